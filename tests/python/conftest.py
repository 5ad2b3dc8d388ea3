"""Shared fixtures: the generator on sys.path, the build's test programs, a private /dev/shm directory."""
import importlib.util
import os
import shutil
import subprocess
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


class Producer:
    """The C++ helper producer (tests/helpers/pyprod.cpp), one command per line on its stdin."""

    def __init__(self, test_bin, path, capacity):
        self.p = subprocess.Popen([str(test_bin / "cbuf_pyprod"), str(path), str(capacity)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        line = self.p.stdout.readline()
        assert line.startswith("ready"), line
        self.path = str(path)

    def cmd(self, line: str) -> str:
        self.send(line)
        return self.p.stdout.readline().strip()

    def send(self, line: str) -> None:  # no answer awaited
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


@pytest.fixture
def producer(test_bin, shm_dir):
    """producer(capacity=1024, name="buf") starts a helper producer on shm_dir/name; all are stopped after."""
    made = []

    def make(capacity=1024, name="buf"):
        p = Producer(test_bin, shm_dir / name, capacity)
        made.append(p)
        return p
    yield make
    for p in made:
        p.stop()


def generated_module(schema, out):
    """Generates the Python module of a schema into `out` and imports it."""
    from cbuf_codegen import generate, load_model
    generate(schema, None, out)
    m = load_model(schema)
    spec = importlib.util.spec_from_file_location(m.name, Path(out) / f"{m.name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
