"""Every code block in README.md and docs/*.md is exercised, so the docs cannot rot.

The fence's info string says how a block is tested (GitHub renders only its first word):
  ```text                      diagrams and sample output: not code, not run
  ```json                      parsed; a schema (has "columns") must generate
  ```json invalid="words"      a schema the generator must refuse with a message containing the words
  ```json mirror=PATH          must equal the JSON file PATH
  ```cpp mirror=PATH           (also python, cmake) every line must appear, in order, in PATH, a file that
                               the test suite builds and runs (MIRRORS says where)
  ```python run                run as a script in a fresh interpreter
  ```json5                     a Zenoh configuration: Zenoh's own parser must accept it (it rejects unknown keys)
  ```sh                        ./dev.sh lines must name a dev.sh command; cbuf lines must parse with the
                               cbuf command's own argument parser; other commands must be known tools
A block without a language, or a code block that says nothing about how it is tested, fails this test.
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cbuf_codegen import SchemaError, generate

REPO = Path(__file__).resolve().parents[2]
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# Files that code blocks may mirror, and the test that builds or runs each one.
MIRRORS = {
    "docs/examples/cpp_tour.cpp": "ctest docs_cpp_tour (tests/CMakeLists.txt)",
    "docs/examples/python_tour.py": "test_python_tour_runs (this file)",
    "docs/examples/numpy_reader.py": "test_roundtrip.py (C++ values, lapped and torn copies)",
    "docs/examples/readme/sensors.json": "test_readme_example_builds_and_runs (this file)",
    "docs/examples/readme/CMakeLists.txt": "test_readme_example_builds_and_runs (this file)",
    "docs/examples/readme/main.cpp": "test_readme_example_builds_and_runs (this file)",
    "docs/examples/readme/reader.py": "test_readme_example_builds_and_runs (this file)",
    "docs/examples/bridge_subscribe.py": "test_bridge.py (rows cross with their indices)",
}
# Commands other than ./dev.sh and cbuf that the docs may show (system tools and build tools).
KNOWN_TOOLS = {"cmake", "git", "pip", "python3", "mount", "umount", "sysctl", "ulimit", "echo", "cat", "grep",
               "taskset", "chrt", "df", "ls", "rm", "mkdir", "id", "getconf", "numactl", "chmod", "sudo",
               ".venv/bin/python", "ctest", "valgrind", "apt-get", "tee", "export", "zenohd"}


class Block:
    def __init__(self, path, line, info, text):
        self.path, self.line, self.text = path, line, text
        words = shlex.split(info) if info else []
        self.lang = words[0] if words else ""
        self.attrs = dict(w.split("=", 1) if "=" in w else (w, "") for w in words[1:])

    def __repr__(self):
        return f"{self.path.relative_to(REPO)}:{self.line}"


def blocks():
    out = []
    for path in DOC_FILES:
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            m = re.match(r"^(\s*)```(.*)$", lines[i])
            if m:
                start, info, body = i + 1, m.group(2).strip(), []
                i += 1
                while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
                    body.append(lines[i])
                    i += 1
                out.append(Block(path, start, info, "\n".join(body)))
            i += 1
    return out


BLOCKS = blocks()


def of(lang):
    return [pytest.param(b, id=repr(b)) for b in BLOCKS if b.lang == lang]


def test_every_block_says_how_it_is_tested():
    untested = [b for b in BLOCKS
                if b.lang not in ("text", "json", "json5", "sh")
                and not (b.lang in ("cpp", "python", "cmake") and "mirror" in b.attrs)
                and not (b.lang == "python" and "run" in b.attrs)]
    assert not untested, ("code blocks need a language and a way to be tested (see tests/python/test_docs.py): "
                          + ", ".join(f"{b} ```{b.lang}" for b in untested))
    assert len(BLOCKS) > 40  # the parser found the blocks


@pytest.mark.parametrize("block", [pytest.param(b, id=repr(b)) for b in BLOCKS if "mirror" in b.attrs])
def test_mirrored_blocks_match_a_tested_file(block):
    target = block.attrs["mirror"]
    assert target in MIRRORS, f"{block}: {target} is not a file the tests build or run (add it to MIRRORS)"
    path = REPO / target
    if block.lang == "json":
        assert json.loads(block.text) == json.loads(path.read_text()), f"{block} differs from {target}"
        return
    source = [line.strip() for line in path.read_text().splitlines()]
    pos = 0
    for line in (x.strip() for x in block.text.splitlines()):
        if not line:
            continue
        try:
            pos = source.index(line, pos) + 1
        except ValueError:
            pytest.fail(f"{block}: this line is not in {target} (in this order):\n    {line}")


@pytest.mark.parametrize("block", of("json5"))
def test_json5_blocks_are_zenoh_configurations(block):
    zenoh = pytest.importorskip("zenoh")
    try:
        zenoh.Config.from_json5(block.text)
    except Exception as e:  # zenoh.ZError names the key it does not know
        pytest.fail(f"{block}: Zenoh refuses this configuration: {e}")


@pytest.mark.parametrize("block", of("json"))
def test_json_blocks_parse_and_schemas_generate(block, tmp_path):
    doc = json.loads(block.text)
    if "mirror" in block.attrs or not (isinstance(doc, dict) and "columns" in doc):
        return
    schema = tmp_path / f"{doc.get('name', 'schema')}.json"
    schema.write_text(block.text)
    if "invalid" in block.attrs:
        with pytest.raises(SchemaError) as info:
            generate(schema, tmp_path / "out", tmp_path / "out")
        assert block.attrs["invalid"] in str(info.value), f"{block}: the message was: {info.value}"
    else:
        generate(schema, tmp_path / "out", tmp_path / "out")


def dev_sh_commands():
    return set(re.findall(r"^  ([a-z][a-z-]*)\)", (REPO / "dev.sh").read_text(), re.M))


def check_command(argv, where):
    while argv and re.match(r"^[A-Z_][A-Z0-9_]*=", argv[0]):  # VAR=value prefixes
        argv = argv[1:]
    if not argv:
        return
    if argv[0] == "sudo":
        argv = argv[1:]
    cmd = argv[0]
    if cmd == "./dev.sh":
        assert len(argv) > 1 and argv[1] in dev_sh_commands(), f"{where}: ./dev.sh has no command {argv[1:2]}"
    elif cmd == "cbuf" or argv[:3] in (["python", "-m", "cbuf.cli"], [".venv/bin/python", "-m", "cbuf.cli"]):
        args = argv[1:] if cmd == "cbuf" else argv[3:]
        check_cbuf_args(args, where)
    elif cmd.startswith("./build") or cmd.startswith("build"):
        pass  # programs the build makes, named by the text around them
    else:
        assert cmd in KNOWN_TOOLS, f"{where}: unknown command {cmd!r} (add it to KNOWN_TOOLS if it is real)"


def check_cbuf_args(args, where):
    from cbuf.cli import build_parser
    from cbuf_codegen.cli import parser as gen_parser
    try:
        if args and args[0] == "gen":
            gen_parser().parse_args(args[1:])
        else:
            build_parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"{where}: cbuf {' '.join(args)}: the cbuf command does not accept this")


@pytest.mark.parametrize("block", of("sh"))
def test_shell_lines_name_real_commands(block):
    pytest.importorskip("cbuf._core", reason="the cbuf package is built with -DCBUF_BUILD_PYTHON=ON")
    text = re.sub(r"\\\n", " ", block.text)
    for raw in text.splitlines():
        line = raw.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        for part in re.split(r"\s*(?:&&|\|\||;|\|)\s*", line):
            check_command(shlex.split(part), f"{block}: {line}")


def test_readme_quick_start_is_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = [b.text for b in BLOCKS if b.path.name == "README.md" and b.text in quick]
    assert commands and "./dev.sh demo" in commands[0] and "./dev.sh test" in commands[0]
    assert "exec ./dev.sh test" in (REPO / ".ci" / "run").read_text()


def test_doc_links_point_to_files_that_exist():
    missing = []
    for path in DOC_FILES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
            if "://" in target:
                continue
            if not (path.parent / target).exists():
                missing.append(f"{path.relative_to(REPO)}: {target}")
    assert not missing, "broken links: " + ", ".join(missing)


def pythonpath(*extra):
    return os.pathsep.join([*map(str, extra), os.environ.get("PYTHONPATH", "")])


def test_python_tour_runs(tmp_path):
    pytest.importorskip("cbuf._core", reason="the cbuf package is built with -DCBUF_BUILD_PYTHON=ON")
    r = subprocess.run([sys.executable, REPO / "docs" / "examples" / "python_tour.py", tmp_path],
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": pythonpath(REPO / "generated" / "sensors")})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAIL" not in r.stdout and r.stdout.count("\nok ") >= 7


@pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("ninja") is None, reason="needs cmake and ninja")
def test_readme_example_builds_and_runs(tmp_path):
    """The README's example project, built against cbuf installed into a temporary prefix, run with
    CBUF_DIR set to a temporary directory, then read from Python with the module it generated."""
    pytest.importorskip("cbuf._core", reason="the cbuf package is built with -DCBUF_BUILD_PYTHON=ON")
    build = tmp_path / "build"
    prefix = tmp_path / "prefix"

    def run(cmd, **kw):
        r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)
        assert r.returncode == 0, f"{' '.join(map(str, cmd))}:\n{r.stdout}\n{r.stderr}"
        return r

    run(["cmake", "-S", REPO, "-B", tmp_path / "cbuf", "-G", "Ninja", f"-DPython3_EXECUTABLE={sys.executable}",
         "-DCBUF_BUILD_TESTS=OFF", "-DCBUF_BUILD_EXAMPLES=OFF", f"-DCMAKE_INSTALL_PREFIX={prefix}"])
    run(["cmake", "--install", tmp_path / "cbuf"])
    run(["cmake", "-S", REPO / "docs" / "examples" / "readme", "-B", build, "-G", "Ninja",
         f"-DCMAKE_PREFIX_PATH={prefix}", f"-DPython3_EXECUTABLE={sys.executable}"])
    run(["cmake", "--build", build])
    shm = tmp_path / "shm"
    shm.mkdir()
    env = {**os.environ, "CBUF_DIR": str(shm)}
    out = run([build / "my_app"], env=env).stdout
    assert "newest channel[0] = 1.5, read 1 row(s) from 0" in out
    out = run([build / "my_app"], env=env).stdout  # a second run takes the closed buffer over: epoch 2
    assert "newest channel[0] = 1.5, read 1 row(s) from 0" in out
    import cbuf
    with cbuf.open(shm / "sensors") as r:
        assert r.epoch == 2
    out = run([sys.executable, REPO / "docs" / "examples" / "readme" / "reader.py"],
              env={**env, "PYTHONPATH": pythonpath(build / "python")}).stdout
    assert "1 recent row(s), 1 new, channel[0] = 1.5" in out
