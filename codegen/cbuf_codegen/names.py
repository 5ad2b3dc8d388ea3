"""Identifier rules shared by validation: keywords of both languages and names the generated code uses."""
import keyword
import sys
from functools import lru_cache
from pathlib import Path

CPP_KEYWORDS = frozenset("""
alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t char16_t char32_t class compl
concept const consteval constexpr constinit const_cast continue co_await co_return co_yield decltype default delete
do double dynamic_cast else enum explicit export extern false float for friend goto if inline int long mutable
namespace new noexcept not not_eq nullptr operator or or_eq private protected public register reinterpret_cast
requires return short signed sizeof static static_assert static_cast struct switch template this thread_local throw
true try typedef typeid typename union unsigned using virtual void volatile wchar_t while xor xor_eq
final override import module
""".split())

# Macros from the C and C++ standard headers the generated code includes: a column of that name would not compile.
CPP_MACROS = frozenset("NULL EOF errno assert offsetof stdin stdout stderr".split())

PYTHON_KEYWORDS = frozenset(keyword.kwlist)

# Members of the generated Row struct and the Python reader that a column name must not shadow.
GENERATED_COLUMN_NAMES = frozenset((
    "kSchemaName", "kSchemaJson", "kFingerprint", "kDefaultCapacity", "kRowSize", "kFields",  # C++ Row
    "_get", "_reader",  # Python Latest accessor
))
# Column names the cbuf tools write beside the columns (tail --csv/--json, MCAP, Foxglove): a column of that name
# would be printed twice or replace the real row index. The runtime refuses them too (detail::schema_columns).
TOOL_COLUMN_NAMES = frozenset(("row_index",))
# Names the schema name (a C++ namespace, a Python module) must not take.
GENERATED_SCHEMA_NAMES = frozenset(("cbuf", "std", "numpy", "np", "cbuf_codegen"))


@lru_cache(maxsize=1)
def cpp_globals() -> frozenset:
    """Names the runtime's headers declare at global scope (cpp_globals.txt, made by codegen/tools/cpp_globals.py):
    a schema name is a namespace there, so `main`, `stat`, `time` or `signal` would not compile."""
    return frozenset((Path(__file__).with_name("cpp_globals.txt")).read_text().split())


# Python's standard library: a generated module of that name would shadow it (`os`, `sys`) or break the imports
# the module itself makes (`typing`, `collections`).
PYTHON_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ())) | frozenset(
    "abc array ast asyncio collections copy csv dataclasses enum functools io json keyword math numbers os pathlib "
    "platform random re select signal socket string struct subprocess sys threading time types typing uuid".split())


def schema_name_reason(name: str) -> str | None:
    """Why `name` cannot be a schema name (a C++ namespace at global scope and a Python module), or None."""
    if name in cpp_globals():
        return "declared at global scope by the C/C++ headers the generated code includes (a namespace of that " \
               "name would not compile)"
    if name in PYTHON_STDLIB:
        return "a module of Python's standard library (the generated module would shadow it, or fail to import)"
    return None


def reserved_reason(name: str) -> str | None:
    """Why `name` cannot be used as a generated identifier, or None if it can."""
    if name in CPP_KEYWORDS:
        return "a C++ keyword"
    if name in PYTHON_KEYWORDS:
        return "a Python keyword"
    if name in CPP_MACROS:
        return "a macro in the C/C++ standard headers"
    if name.startswith("__") or (name.startswith("_") and name[1:2].isupper()):
        return "reserved to the C++ implementation (leading '__' or '_' + capital)"
    return None
