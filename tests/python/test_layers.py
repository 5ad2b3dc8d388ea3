"""The layering the runtime's comments promise, checked on the sources: every system call in the OS layer,
no macro leaking out of a header, dependencies pointing one way."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEADERS = REPO / "runtime" / "include" / "cbuf"
# The OS layer: shm.hpp, and the SIGBUS handler its mappings use.
OS_LAYER = {"shm.hpp", "detail/sigbus_guard.hpp"}
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
    assert not found, f"system calls or system headers outside shm.hpp: {found}"
    # The check itself sees what it looks for.
    assert "open" in _SYSCALL.findall(_code((HEADERS / "shm.hpp").read_text()))
    assert "futex.h" in "".join(_SYSTEM_HEADER.findall((HEADERS / "shm.hpp").read_text()))


def test_no_header_defines_a_macro():
    """Macros leak into every file that includes cbuf (CBUF_TSAN once did): constants instead."""
    for name, text in _headers():
        assert not re.search(r"^\s*#\s*define\b", text, re.M), name


def test_producer_and_consumer_do_not_include_each_other():
    for a, b in (("producer.hpp", "consumer.hpp"), ("consumer.hpp", "producer.hpp")):
        assert f'#include "cbuf/{b}"' not in (HEADERS / a).read_text()


def test_the_python_reader_does_not_depend_on_the_generator():
    """The package's reading side imports nothing from cbuf_codegen; only `cbuf gen` hands over to it, and
    cbuf.create(), which lays a schema out exactly as `cbuf gen` does (the generator owns the layout)."""
    allowed = {"python/cbuf/cli/__init__.py": ["cbuf_codegen.cli"],
               "python/cbuf/producer.py": ["cbuf_codegen", "cbuf_codegen.errors", "cbuf_codegen.pipeline"]}
    for p in sorted((REPO / "python" / "cbuf").rglob("*.py")):
        imports = re.findall(r"^\s*(?:from|import)\s+(cbuf_codegen\S*)", p.read_text(), re.M)
        assert imports == allowed.get(p.relative_to(REPO).as_posix(), []), p
