"""Stage 2: validation. First the checked-in JSON Schema (schema/cbuf.schema.json), then the semantic rules
JSON Schema cannot express. Every failure is one SchemaError naming the JSON pointer and the fix."""
import difflib
import json
import re
from functools import lru_cache
from pathlib import Path

from . import jsonschema_lite
from .errors import SchemaError
from .names import GENERATED_COLUMN_NAMES, GENERATED_SCHEMA_NAMES, reserved_reason, schema_name_reason
from .types import MAX_ARRAY_LENGTH, MAX_CAPACITY, MAX_STRING_LENGTH, SCALARS, TYPE_NAMES

_TYPE_RE = re.compile(r"^([a-z_0-9]+)(?:\[([0-9]+)\])?$")


def schema_path() -> Path:
    """The JSON Schema: the copy installed beside this package, else the repository's schema/ folder."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "cbuf.schema.json", here.parent.parent / "schema" / "cbuf.schema.json"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("cbuf.schema.json not found beside cbuf_codegen nor in the repository's schema/")


@lru_cache(maxsize=1)
def json_schema() -> dict:
    s = json.loads(schema_path().read_text(encoding="utf-8"))
    jsonschema_lite.check_schema(s)
    return s


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def _fix_for(e: jsonschema_lite.ValidationError, doc) -> tuple[str, str]:
    """(problem, fix) in words for a JSON Schema violation."""
    leaf = e.pointer.rsplit("/", 1)[-1]
    if e.keyword == "additionalProperties":
        return e.message, f"{_suggest(leaf, e.detail)}allowed keys here: {', '.join(e.detail)}"
    if e.keyword == "required":
        return e.message, f"add {e.detail!r}"
    if e.keyword == "type":
        return e.message, f"write a JSON {e.detail} here"
    if e.keyword == "pattern" and leaf == "type":
        return _type_problem(_at(doc, e.pointer))
    if e.keyword == "pattern":
        return (f"{_at(doc, e.pointer)!r} is not an identifier",
                "use letters, digits and '_', not starting with a digit")
    if e.keyword == "minItems" and e.pointer == "/columns":
        return "the schema has no columns", "add at least one column"
    if e.pointer == "/capacity":
        return e.message, f"use a capacity between 1 and {MAX_CAPACITY} rows"
    rule = {"minimum": "at least", "maximum": "at most", "minLength": "a length of at least",
            "maxLength": "a length of at most", "enum": "one of", "minItems": "at least N items:",
            "maxItems": "at most N items:"}.get(e.keyword)
    return e.message, (f"use {rule} {e.detail}" if rule and e.detail is not None
                       else f"the rule here is '{e.keyword}'" + (f": {e.detail}" if e.detail is not None else ""))


# Type names of other languages, and what they are called here.
_ALIASES = {"double": "float64", "float": "float32", "int": "int32", "long": "int64", "short": "int16",
            "char": "int8", "byte": "uint8", "uint": "uint32", "unsigned": "uint32", "boolean": "bool",
            "str": "string[N]", "timestamp": "timestamp_ns", "datetime": "timestamp_ns", "time": "timestamp_ns",
            "half": "float32", "float16": "float32", "f32": "float32", "f64": "float64", "i32": "int32",
            "i64": "int64", "u8": "uint8", "u32": "uint32", "u64": "uint64", "int8_t": "int8", "int16_t": "int16",
            "int32_t": "int32", "int64_t": "int64", "uint8_t": "uint8", "uint16_t": "uint16", "uint32_t": "uint32",
            "uint64_t": "uint64"}


def _type_problem(t: str) -> tuple[str, str]:
    m = _TYPE_RE.match(t)
    base = m.group(1) if m else t.split("[")[0]
    if base not in TYPE_NAMES:
        alias = _ALIASES.get(base.lower())
        hint = f"did you mean {alias!r}? " if alias else _suggest(base, TYPE_NAMES)
        return (f"unknown type {t!r}",
                f"{hint}use one of {', '.join(TYPE_NAMES[:-1])}, T[N] or string[N]")
    if base == "string":
        return f"type {t!r} lacks its capacity", "write string[N] with N the capacity in bytes, e.g. string[16]"
    return f"type {t!r} is malformed", f"write {base} or {base}[N] with N a positive integer"


def _at(doc, pointer: str):
    for part in pointer.split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


def parse_type(t: str) -> tuple[str, int | None]:
    """"float32[3]" -> ("float32", 3); "int8" -> ("int8", None); "string[16]" -> ("string", 16)."""
    m = _TYPE_RE.match(t)
    assert m, t  # the JSON Schema pattern has been checked
    return m.group(1), int(m.group(2)) if m.group(2) is not None else None


def validate(file: str, doc) -> dict:
    """Returns the document if it is a valid cbuf schema; raises SchemaError otherwise."""
    try:
        jsonschema_lite.validate(doc, json_schema())
    except jsonschema_lite.ValidationError as e:
        problem, fix = _fix_for(e, doc)
        raise SchemaError(file, e.pointer or "/", problem, fix) from None

    name = doc["name"]
    why = reserved_reason(name) or ("a name the generated code uses" if name in GENERATED_SCHEMA_NAMES else None) \
        or schema_name_reason(name)
    if why:
        raise SchemaError(file, "/name", f"schema name {name!r} is {why}", f"rename it, e.g. {name + '_buf'!r}")

    seen: dict[str, int] = {}
    for i, col in enumerate(doc["columns"]):
        cname = col["name"]
        why = reserved_reason(cname) or ("a name the generated code uses" if cname in GENERATED_COLUMN_NAMES else None)
        if why is None and cname.startswith("_"):
            why = "hidden by the Python reader (reader.<column> skips names starting with '_')"
        if why:
            better = cname.lstrip("_") or "value"
            raise SchemaError(file, f"/columns/{i}/name", f"column name {cname!r} is {why}",
                              f"rename the column, e.g. {(better if better != cname else cname + '_')!r}")
        key = cname.lower()
        if key in seen:
            other = doc["columns"][seen[key]]["name"]
            same = "the same name as" if other == cname else "a name differing only by case from"
            raise SchemaError(file, f"/columns/{i}/name", f"column {cname!r} has {same} column {seen[key]} ({other!r})",
                              "give every column a distinct name (case-insensitively: some tools fold case)")
        seen[key] = i

        base, count = parse_type(col["type"])
        ptr = f"/columns/{i}/type"
        if base == "string":
            if count is None:
                raise SchemaError(file, ptr, "type 'string' lacks its capacity", "write string[N], e.g. string[16]")
            if not 1 <= count <= MAX_STRING_LENGTH:
                raise SchemaError(file, ptr, f"string capacity {count} is out of range",
                                  f"use string[N] with 1 <= N <= {MAX_STRING_LENGTH}")
        elif base not in SCALARS:
            problem, fix = _type_problem(col["type"])
            raise SchemaError(file, ptr, problem, fix)
        elif count is not None and not 1 <= count <= MAX_ARRAY_LENGTH:
            raise SchemaError(file, ptr, f"array length {count} is out of range",
                              f"use {base}[N] with 1 <= N <= {MAX_ARRAY_LENGTH}, or a scalar {base}")
    return doc
