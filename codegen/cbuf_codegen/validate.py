"""Stage 2: validation. First the generator's JSON Schema (cbuf.schema.json beside this file, checked by the
`jsonschema` package, Draft 2020-12), then the semantic rules JSON Schema cannot express. Every failure is one
SchemaError naming the JSON pointer and the fix."""
import difflib
import json
import re
from functools import lru_cache
from pathlib import Path

import jsonschema
from jsonschema.exceptions import best_match, by_relevance

from .errors import SchemaError
from .names import (GENERATED_COLUMN_NAMES, GENERATED_SCHEMA_NAMES, TOOL_COLUMN_NAMES, reserved_reason,
                    schema_name_reason)
from .types import MAX_ARRAY_LENGTH, MAX_CAPACITY, MAX_STRING_LENGTH, SCALARS, TYPE_NAMES

SCHEMA_PATH = Path(__file__).resolve().parent / "cbuf.schema.json"
_TYPE_RE = re.compile(r"^([a-z_0-9]+)(?:\[([0-9]+)\])?$")
# Where the JSON Schema keeps the column type rule, and that rule built from the one type table (types.py).
_TYPE_RULE = ("$defs", "column", "properties", "type", "pattern")


def type_pattern() -> str:
    return rf"^({'|'.join(SCALARS)})(\[[0-9]+\])?$|^string\[[0-9]+\]$"


@lru_cache(maxsize=1)
def validator() -> jsonschema.Draft202012Validator:
    """The JSON Schema validator. The file's type pattern must be the one built from the type table: the file is
    what editors see, the table is what the generator emits code for."""
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    rule = schema
    for key in _TYPE_RULE:
        rule = rule[key]
    if rule != type_pattern():
        raise RuntimeError(f"{SCHEMA_PATH}: {'/'.join(_TYPE_RULE)} is {rule!r} but types.py gives "
                           f"{type_pattern()!r}: write the latter into the file")
    return jsonschema.Draft202012Validator(schema)


# An unknown key is the real problem when a required one is missing too: "colums" is a typo of "columns".
_relevance = by_relevance(strong=frozenset({"additionalProperties"}))


def _pointer(path) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


_JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array"),
               (dict, "object"), (type(None), "null"))


def _json_kind(v) -> str:
    return next(name for t, name in _JSON_TYPES if isinstance(v, t))


def _explain(e: jsonschema.ValidationError) -> tuple[str, str, str]:
    """(JSON pointer, problem, fix) in words for a JSON Schema violation."""
    where = _pointer(e.absolute_path)
    rule, value = e.validator, e.validator_value
    if rule == "additionalProperties":
        allowed = sorted(e.schema.get("properties", {}))
        key = next(k for k in e.instance if k not in allowed)
        return (f"{where}/{key}", f"unknown key {key!r}",
                f"{_suggest(key, allowed)}allowed keys here: {', '.join(allowed)}")
    if rule == "required":
        key = next(k for k in value if k not in e.instance)
        return f"{where}/{key}", f"required key {key!r} is missing", f"add {key!r}"
    if rule == "type":
        return where, f"expected {value}, found {_json_kind(e.instance)}", f"write a JSON {value} here"
    if rule == "pattern" and where.endswith("/type"):
        return (where, *_type_problem(e.instance))
    if rule == "pattern":
        return (where, f"{e.instance!r} is not an identifier",
                "use letters, digits and '_', not starting with a digit")
    if rule == "minItems" and where == "/columns":
        return where, "the schema has no columns", "add at least one column"
    if where == "/capacity":
        side = "below the minimum" if rule == "minimum" else "above the maximum"
        return where, f"{e.instance} is {side} {value}", f"use a capacity between 1 and {MAX_CAPACITY} rows"
    words = {"maxItems": (f"the list has {len(e.instance)} items",
                          f"use at most {value} items"),
             "maxLength": (f"the text is longer than {value} characters", f"shorten it to at most {value} characters")}
    problem, fix = words.get(rule, (f"breaks the rule {rule!r}", f"the rule is {rule}: {value}"))
    return where, problem, fix


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
        close = difflib.get_close_matches(base, list(TYPE_NAMES), n=1, cutoff=0.6)
        fixed = alias or (close[0] if close else None)
        if fixed and t != base and "[" not in fixed:  # keep what follows the name: flaot64[3] -> float64[3]
            fixed += t[len(base):]
        hint = f"did you mean {fixed!r}? " if fixed else ""
        return (f"unknown type {t!r}",
                f"{hint}use one of {', '.join(TYPE_NAMES[:-1])}, T[N] or string[N]")
    if base == "string":
        return f"type {t!r} lacks its capacity", "write string[N] with N the capacity in bytes, e.g. string[16]"
    return f"type {t!r} is malformed", f"write {base} or {base}[N] with N a positive integer"


def parse_type(t: str) -> tuple[str, int | None]:
    """"float32[3]" -> ("float32", 3); "int8" -> ("int8", None); "string[16]" -> ("string", 16)."""
    m = _TYPE_RE.match(t)
    assert m, t  # the JSON Schema pattern has been checked
    return m.group(1), int(m.group(2)) if m.group(2) is not None else None


def validate(file: str, doc) -> dict:
    """Returns the document if it is a valid cbuf schema; raises SchemaError otherwise."""
    error = best_match(validator().iter_errors(doc), key=_relevance)
    if error is not None:
        where, problem, fix = _explain(error)
        raise SchemaError(file, where or "/", problem, fix)

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
        if why is None and cname in TOOL_COLUMN_NAMES:
            why = "the field the cbuf tools add for the row's index (tail --csv/--json, MCAP, Foxglove)"
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

        # The JSON Schema's pattern has admitted only T, T[N] and string[N] with T from the type table.
        base, count = parse_type(col["type"])
        ptr = f"/columns/{i}/type"
        if base == "string":
            if not 1 <= count <= MAX_STRING_LENGTH:
                raise SchemaError(file, ptr, f"string capacity {count} is out of range",
                                  f"use string[N] with 1 <= N <= {MAX_STRING_LENGTH}")
        elif count is not None and not 1 <= count <= MAX_ARRAY_LENGTH:
            raise SchemaError(file, ptr, f"array length {count} is out of range",
                              f"use {base}[N] with 1 <= N <= {MAX_ARRAY_LENGTH}, or a scalar {base}")
    return doc
