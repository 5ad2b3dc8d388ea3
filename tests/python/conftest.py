"""Shared fixtures: the generator on sys.path, the build's test programs, a private /dev/shm directory."""
import os
import shutil
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "codegen"))
sys.path.insert(0, str(REPO / "docs" / "examples"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def shm_dir():
    d = Path("/dev/shm") / f"cbuf-pytest-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def test_bin() -> Path:
    """Directory of the C++ test programs (set by ctest); tests that need them skip without it."""
    b = os.environ.get("CBUF_TEST_BIN")
    if not b:
        pytest.skip("CBUF_TEST_BIN is not set: run through ctest (./dev.sh test) to get the C++ test programs")
    return Path(b)
