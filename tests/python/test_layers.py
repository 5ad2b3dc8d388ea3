"""The layering the runtime's comments promise, checked on the sources: every system call in the OS layer,
no macro leaking out of a header, dependencies pointing one way."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEADERS = REPO / "runtime" / "include" / "cbuf"
# The OS layer: os.hpp, and the SIGBUS handler its mappings use.
OS_LAYER = {"os.hpp", "detail/sigbus_guard.hpp"}
# A call to a C/POSIX function in the global namespace: ::open(, ::syscall(, ::pthread_self( ...
_SYSCALL = re.compile(r"(?<![\w:>.])::([a-z_][a-z0-9_]*)\s*\(")
_SYSTEM_HEADER = re.compile(r"^#include <((?:sys|linux)/[\w/]+\.h|unistd\.h|fcntl\.h|pthread\.h|sched\.h|signal\.h|"
                            r"poll\.h|time\.h)>", re.M)


def _headers():
    return sorted((p.relative_to(HEADERS).as_posix(), p.read_text()) for p in HEADERS.rglob("*.hpp"))


def _code(text: str) -> str:
    """The text without comments and string literals (a comment may mention kill() or ::open)."""
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def test_only_the_os_layer_makes_system_calls():
    found = {}
    for name, text in _headers():
        if name in OS_LAYER:
            continue
        calls = sorted(set(_SYSCALL.findall(_code(text))))
        includes = [m for m in _SYSTEM_HEADER.findall(text) if m != "sys/types.h"]
        if calls or includes:
            found[name] = calls + includes
    assert not found, f"system calls or system headers outside os.hpp: {found}"
    # The check itself sees what it looks for.
    assert "open" in _SYSCALL.findall(_code((HEADERS / "os.hpp").read_text()))
    assert "futex.h" in "".join(_SYSTEM_HEADER.findall((HEADERS / "os.hpp").read_text()))


def test_no_header_defines_a_macro():
    """Macros leak into every file that includes cbuf (CBUF_TSAN once did): constants instead."""
    for name, text in _headers():
        assert not re.search(r"^\s*#\s*define\b", text, re.M), name


def test_producer_and_consumer_do_not_include_each_other():
    for a, b in (("producer.hpp", "consumer.hpp"), ("consumer.hpp", "producer.hpp")):
        assert f'#include "cbuf/{b}"' not in (HEADERS / a).read_text()


def test_the_python_reader_does_not_depend_on_the_generator():
    """The package's reading side imports nothing from cbuf_codegen; only `cbuf gen` hands over to it, and
    cbuf.create(), which lays a schema out exactly as `cbuf gen` does (the generator owns the layout), and MCAP
    recording, whose cdr schema is the OMG IDL the generator writes."""
    allowed = {"python/cbuf/cli/__init__.py": ["cbuf_codegen.cli"],
               "python/cbuf/producer.py": ["cbuf_codegen", "cbuf_codegen.errors", "cbuf_codegen.pipeline"],
               # MCAP's cdr schema is the generator's OMG IDL of the row (one owner for that text)
               "python/cbuf/formats/mcap.py": ["cbuf_codegen"]}
    for p in sorted((REPO / "python" / "cbuf").rglob("*.py")):
        imports = re.findall(r"^\s*(?:from|import)\s+(cbuf_codegen\S*)", p.read_text(), re.M)
        assert imports == allowed.get(p.relative_to(REPO).as_posix(), []), p


# --- the Python package (issue 28): library errors, an import graph without circles, no private reaches ---
PACKAGE = REPO / "python" / "cbuf"
CORE = REPO / "python" / "core"
_NAMEDTUPLE_API = {"_asdict", "_replace", "_fields", "_make"}  # public despite the underscore


def _modules() -> dict:
    out = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        parts = p.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _imports_and_reaches(mods: dict):
    """Each module's imports of package modules (anywhere in it, lazy ones too), and every `x._name` it reads
    where x is not self or cls (another module's or object's private attribute)."""
    import ast
    graph, reaches = {}, []
    for name, p in mods.items():
        pkg = name if p.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = pkg.split(".")[:len(pkg.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                for a in node.names:
                    full = f"{target}.{a.name}"
                    deps.add(full if full in mods or full == "cbuf._core" else target)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                  and node.attr not in _NAMEDTUPLE_API
                  and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                reaches.append(f"{p.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph, reaches


def _circles(graph: dict) -> list:
    found, state, stack = [], {}, []

    def visit(u):
        state[u] = 1
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                found.append(" -> ".join(stack[stack.index(v):] + [v]))
            elif not state.get(v):
                visit(v)
        stack.pop()
        state[u] = 2
    for u in sorted(graph):
        if not state.get(u):
            visit(u)
    return found


def test_the_package_imports_without_circles_and_reads_no_private_names_of_other_modules():
    graph, reaches = _imports_and_reaches(_modules())
    assert not _circles(graph), _circles(graph)
    assert not reaches, reaches
    # The checks see what they look for.
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a -> b -> c -> a"]
    assert "cbuf.reader" in graph["cbuf"] and "cbuf.errors" in graph["cbuf.reader"]


def test_library_errors_belong_to_the_library():
    """CliError is the command's: no module outside cbuf/cli/ names it, and every exception class the package
    defines derives from cbuf.Error (the CLI maps them to one line at its edge)."""
    import ast
    for name, p in _modules().items():
        text = p.read_text()
        if not name.startswith("cbuf.cli"):
            assert "CliError" not in text, p
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(b, ast.Name) and b.id.endswith(("Error", "Exception")) for b in node.bases):
                if name.startswith("cbuf.cli"):
                    continue
                assert any(isinstance(b, ast.Name) and b.id in ("Error", "RecordingError", "BridgeError",
                                                                "FormatError", "NotFoundError")
                           for b in node.bases), f"{p}: class {node.name} does not derive from cbuf.Error"


def test_the_binding_mirrors_the_runtime():
    """python/core/ calls the runtime's whole operations: no pacing or following of its own, and it never
    imports the Python package (its exceptions are created in the module)."""
    code = "\n".join(_code(p.read_text()) for p in sorted(CORE.glob("*.[ch]pp")))
    for part in ("sit_out", "waited", "successor", "hand_over", "next_epoch", "follow_restart", "look_after",
                 "pausing", "reattach", 'import("cbuf'):
        assert part not in code, part
    assert "py::exec" in code and "register_exception_translator" in code


def test_the_core_stub_says_what_the_module_has(tmp_path):
    """mypy's stubtest compares python/cbuf/_core.pyi with the built module; a stub that lost a method is
    caught (the control below)."""
    import shutil
    import subprocess
    import sys
    import cbuf
    built = Path(cbuf.__file__).parent
    allow = Path(__file__).with_name("core_stub_allowlist.txt")

    def stubtest(root: Path):
        env = {**__import__("os").environ, "PYTHONPATH": str(root), "MYPY_CACHE_DIR": str(tmp_path / "cache")}
        return subprocess.run([sys.executable, "-m", "mypy.stubtest", "cbuf._core", "--allowlist", str(allow)],
                              capture_output=True, text=True, cwd=root, env=env, timeout=300)
    r = stubtest(built.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    stale = tmp_path / "stale"
    shutil.copytree(built, stale / "cbuf", ignore=shutil.ignore_patterns("__pycache__", "cli"))
    stub = stale / "cbuf" / "_core.pyi"
    stub.write_text(stub.read_text().replace("    def head(self) -> int: ...\n", ""))
    r = stubtest(stale)
    assert r.returncode != 0 and "cbuf._core.Buffer.head" in r.stdout, r.stdout
