"""Packaging: the installed CMake package, add_subdirectory and FetchContent consumers, regeneration rules,
add_cbuf_schema() misuse, and `pip install .` into a fresh virtual environment. Each builds real projects, so
these are the slowest Python tests; they run in the plain build's ctest."""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "tests" / "package"

pytestmark = pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("ninja") is None,
                                reason="cmake and ninja are needed to build the test projects")


def run(cmd, cwd=None, ok=True, env=None):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                       env={**os.environ, **(env or {})})
    if ok and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def configure(src, build, *defs):
    return run(["cmake", "-S", src, "-B", build, "-G", "Ninja", f"-DPython3_EXECUTABLE={sys.executable}", *defs])


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    """cbuf installed into a temporary prefix (headers, generator, CMake package)."""
    base = tmp_path_factory.mktemp("install")
    configure(REPO, base / "build", "-DCBUF_BUILD_TESTS=OFF", "-DCBUF_BUILD_EXAMPLES=OFF",
              f"-DCMAKE_INSTALL_PREFIX={base / 'prefix'}")
    run(["cmake", "--build", base / "build"])
    run(["cmake", "--install", base / "build"])
    return base / "prefix"


def test_install_layout(prefix):
    assert (prefix / "include" / "cbuf" / "cbuf.hpp").is_file()
    cmake_dir = prefix / "lib" / "cmake" / "cbuf"
    for f in ("cbufConfig.cmake", "cbufConfigVersion.cmake", "cbufTargets.cmake", "cbufGenerate.cmake"):
        assert (cmake_dir / f).is_file(), f
    gen = prefix / "share" / "cbuf" / "codegen" / "cbuf_codegen"
    assert (gen / "cbuf.schema.json").is_file() and (gen / "templates" / "cpp_header.hpp.j2").is_file()
    assert not list(gen.rglob("__pycache__"))


def test_examples_build_and_run_against_the_installed_package(prefix, tmp_path):
    configure(REPO / "examples", tmp_path, f"-DCMAKE_PREFIX_PATH={prefix}")
    run(["cmake", "--build", tmp_path])
    r = run([tmp_path / "cbuf_demo", "0.3"])
    assert "every row accounted for" in r.stdout
    assert (tmp_path / "python" / "demo_sensor.py").is_file()


def test_major_version_mismatch_is_refused(prefix, tmp_path):
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.20)\nproject(v LANGUAGES CXX)\nfind_package(cbuf 2 CONFIG REQUIRED)\n")
    r = run(["cmake", "-S", tmp_path, "-B", tmp_path / "b", f"-DCMAKE_PREFIX_PATH={prefix}"], ok=False)
    assert r.returncode != 0 and "cbuf" in r.stderr and "0.1.0" in r.stderr


@pytest.mark.parametrize("project", ["subdir", "fetch"])
def test_examples_via_add_subdirectory_and_fetchcontent(project, tmp_path):
    configure(PKG / project, tmp_path, f"-DCBUF_SOURCE_DIR={REPO}")
    run(["cmake", "--build", tmp_path])
    assert "every row accounted for" in run([tmp_path / "examples" / "cbuf_demo", "0.3"]).stdout


def test_regeneration_only_when_the_schema_changes(prefix, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO / "examples", src)
    build = tmp_path / "build"
    configure(src, build, f"-DCMAKE_PREFIX_PATH={prefix}")
    run(["cmake", "--build", build])
    header = build / "cbuf_generated" / "demo_sensor" / "demo_sensor.hpp"
    before = header.stat().st_mtime_ns
    assert "no work to do" in run(["cmake", "--build", build]).stdout

    time.sleep(0.01)
    (src / "demo_sensor.json").touch()  # touched, same content: regenerated to identical text, nothing rebuilt
    out = run(["cmake", "--build", build]).stdout
    assert "Building CXX" not in out
    assert header.stat().st_mtime_ns == before

    text = (src / "demo_sensor.json").read_text().replace(
        '"columns": [', '"columns": [\n    {"name": "extra", "type": "int32"},')
    (src / "demo_sensor.json").write_text(text)
    out = run(["cmake", "--build", build]).stdout
    assert "generating demo_sensor.hpp" in out and "Building CXX object CMakeFiles/cbuf_demo.dir/demo.cpp.o" in out
    assert "std::int32_t extra;" in header.read_text()
    assert "no work to do" in run(["cmake", "--build", build]).stdout


@pytest.mark.parametrize("case,message", [
    ("missing_schema", "missing SCHEMA <file>"),
    ("unknown_keyword", "unknown argument(s) 'SCHEMAS;x'"),
    ("nonexistent", "does not exist"),
])
def test_add_cbuf_schema_misuse_fails_configure_with_a_clear_message(prefix, tmp_path, case, message):
    r = run(["cmake", "-S", PKG / "misuse", "-B", tmp_path, "-G", "Ninja", f"-DCMAKE_PREFIX_PATH={prefix}",
             f"-DCASE={case}", f"-DPython3_EXECUTABLE={sys.executable}"], ok=False)
    assert r.returncode != 0
    assert message in " ".join(r.stderr.split()), r.stderr


def test_invalid_schema_fails_configure_with_the_generator_message(prefix, tmp_path):
    """Checked at configure time: reported even when nothing builds the target."""
    r = run(["cmake", "-S", PKG / "misuse", "-B", tmp_path, "-G", "Ninja", f"-DCMAKE_PREFIX_PATH={prefix}",
             "-DCASE=invalid", f"-DPython3_EXECUTABLE={sys.executable}"], ok=False)
    assert r.returncode != 0
    out = " ".join((r.stdout + r.stderr).split())
    assert "invalid.json: /columns/0/type: unknown type 'flaot32'. Fix: did you mean 'float32'?" in out
    assert "Traceback" not in out


def test_newcomer_project_three_schemas_processes_and_python(prefix, tmp_path):
    """A project of one's own: find_package, three schemas (a robot state, hostile but valid names, 16 KiB
    rows), a producer and a consumer process, and the generated Python modules imported from PYTHON_OUT."""
    build = tmp_path / "build"
    configure(PKG / "newcomer", build, f"-DCMAKE_PREFIX_PATH={prefix}")
    run(["cmake", "--build", build])
    for header in ("robot_state.hpp", "sensor_v2.hpp", "waveform.hpp"):  # named after each schema's name
        assert list(build.rglob(header)), header
    shm = Path("/dev/shm") / f"cbuf-newcomer-{os.getpid()}"
    shm.mkdir()
    try:
        assert "wrote 100 rows" in run([build / "producer", shm, 100]).stdout
        assert "checked 100 rows of each, 100 traces, 0 bad" in run([build / "consumer", shm, 100]).stdout
        script = (
            "import robot_state, sensor_v2, waveform, sys\n"
            f"d = {str(shm)!r}\n"
            "r = robot_state.open(dir=d); rows = r.last(100)\n"
            "assert list(rows['stamp']) == list(range(1000, 1100)) and rows['frame_id'][0] == b'map'\n"
            "assert r.latest_values.battery == 24.5 and r.schema['columns'][1]['unit'] == 'm'\n"
            "o = sensor_v2.open(dir=d); last = o.last(100)\n"
            "assert list(last['Row']) == list(range(100)) and last['value'][5] == b'hello'\n"
            "assert o.latest_values.count == -99 and o.latest_values.print\n"
            "w = waveform.open(dir=d); t = w.last(100)\n"
            "assert t.dtype.itemsize == 16392 and t['trace'][42][4095] == 42 + 4095 / 4096\n"
            "print('python ok')\n")
        env = {"PYTHONPATH": os.pathsep.join([str(build / "python"), os.environ.get("PYTHONPATH", "")])}
        assert run([sys.executable, "-c", script], env=env).stdout.strip() == "python ok"
    finally:
        shutil.rmtree(shm, ignore_errors=True)


def test_missing_prerequisites_are_named_with_a_fix_that_works_on_debian(prefix, tmp_path):
    venv = tmp_path / "venv"  # a Python without Jinja2
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    r = run(["cmake", "-S", PKG / "newcomer", "-B", tmp_path / "a", f"-DCMAKE_PREFIX_PATH={prefix}",
             f"-DCBUF_PYTHON={venv / 'bin' / 'python'}"], ok=False)
    msg = " ".join(r.stderr.split())
    assert r.returncode != 0 and "needs Jinja2 and jsonschema" in msg and "-DCBUF_PYTHON" in msg
    assert "cannot import jinja2, jsonschema" in msg and "apt install python3-jinja2 python3-jsonschema" in msg
    # An active virtual environment is the one used (and named) when CBUF_PYTHON is not set.
    r = run(["cmake", "-S", PKG / "newcomer", "-B", tmp_path / "b", f"-DCMAKE_PREFIX_PATH={prefix}"], ok=False,
            env={"VIRTUAL_ENV": str(venv)})
    assert r.returncode != 0 and "the active virtual environment" in " ".join(r.stderr.split())
    # No nlohmann_json: the package says which one to install.
    r = run(["cmake", "-S", PKG / "newcomer", "-B", tmp_path / "c", f"-DCMAKE_PREFIX_PATH={prefix}",
             "-DCMAKE_DISABLE_FIND_PACKAGE_nlohmann_json=TRUE"], ok=False)
    msg = " ".join(r.stderr.split())
    assert r.returncode != 0 and "nlohmann-json3-dev" in msg, msg


@pytest.mark.skipif(os.environ.get("CBUF_SKIP_PIP_TEST") == "1", reason="CBUF_SKIP_PIP_TEST=1")
def test_pip_install_into_a_fresh_venv(tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv])
    py = venv / "bin" / "python"
    src = tmp_path / "src"  # a clean copy: no build trees or virtualenvs from the working copy
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns("build*", ".venv", ".git", "__pycache__"))
    run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", src])
    r = run([py, "-c", "import cbuf, cbuf._core, numpy; print(cbuf.__version__, cbuf._core.ABI_VERSION)"],
            cwd=tmp_path)
    assert r.stdout.split() == ["0.1.0", "1"]
    cli = venv / "bin" / "cbuf"
    assert run([cli, "--version"]).stdout.strip() == "cbuf 0.1.0"
    out = tmp_path / "gen"
    r = run([cli, "gen", REPO / "schema" / "examples" / "sensors.json", "-o", out])
    assert r.stdout == "" and (out / "sensors.hpp").is_file() and (out / "sensors.py").is_file()
    # The installed generator validates against its own copy of the JSON Schema.
    r = run([cli, "gen", REPO / "tests" / "data" / "schemas" / "invalid" / "unknown_type.json", "-o", out], ok=False)
    assert r.returncode == 1 and "did you mean 'float32'" in r.stderr
