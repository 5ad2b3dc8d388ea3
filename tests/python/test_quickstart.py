"""The quick start from a fresh clone: `./dev.sh test` and `./dev.sh demo` begin with `./dev.sh setup`, which
installs what is missing and configures the build. Here it runs in a clone of the repository's HEAD, with the
Python environment of this test run (CBUF_VENV), so that nothing needs the network when everything is
already satisfied: it must then install nothing, say so, configure the build, and leave the clone's working
tree clean."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.skipif(shutil.which("git") is None, reason="git is needed to clone the repository"),
    pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git checkout (an sdist or an installed copy)"),
    pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("ninja") is None, reason="needs cmake and ninja"),
]


def run(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    dest = tmp_path_factory.mktemp("quickstart") / "cbuf"
    r = run(["git", "clone", "--quiet", "--no-hardlinks", REPO, dest])
    assert r.returncode == 0, r.stderr
    return dest


def test_setup_in_a_fresh_clone_installs_nothing_when_everything_is_there(clone):
    env = {**os.environ, "CBUF_VENV": sys.prefix}
    env.pop("CBUF_NO_INSTALL", None)
    r = run([clone / "dev.sh", "setup"], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "installing" not in r.stdout, "everything was present, yet it installed:\n" + r.stdout
    assert "dependencies: all present" in r.stdout
    assert (clone / "build" / "CMakeCache.txt").is_file()
    cache = (clone / "build" / "CMakeCache.txt").read_text()
    assert "CBUF_BUILD_PYTHON:BOOL=ON" in cache  # the same configuration ./dev.sh test builds
    status = run(["git", "status", "--porcelain", "--ignored=no"], cwd=clone)
    assert status.stdout == "", "set-up left files git would see:\n" + status.stdout


def test_the_quick_start_commands_exist_and_others_are_refused(clone):
    text = (clone / "dev.sh").read_text()
    for command in ("demo) ", "test) ", "setup) "):
        assert f"\n  {command}" in text
    r = run([clone / "dev.sh", "no-such-command"])
    assert r.returncode == 2 and "usage:" in r.stderr and "demo|test" in r.stderr
