"""Rows as JSON messages with a JSON Schema: the `--encoding json` of MCAP recordings (formats/mcap.py) and of the Foxglove
live view (cli/foxglove.py), which Foxglove, the mcap CLI and every MCAP library decode without cbuf.

A message is {"row_index": n, <column>: value, ...}: integers and floats as JSON numbers (floats at full
precision; NaN and infinities as the strings "nan", "inf", "-inf", which JSON lacks), bools as true/false,
arrays as lists, strings as text, timestamp_ns as integer nanoseconds. A 64-bit integer beyond 2^53 - 1 (a
timestamp_ns of today, say) is written as a decimal string: JavaScript's JSON.parse - Foxglove's, the npm MCAP
tools' - would round it as a number. Each column's unit and doc are in its field's description.
"""
import json
import math
import time

import numpy as np

from ._dtype import LayoutColumn

NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
JSON_SAFE_INT = 2**53 - 1  # the largest integer every JSON reader (JavaScript's doubles) holds exactly


def _field_schema(c: LayoutColumn, unit: str, doc: str) -> dict:
    """The JSON Schema of one column's values, with its unit and doc in the description."""
    kind = np.dtype(c.numpy).kind  # from the runtime's validated NumPy format, not the type's name
    if kind == "S":
        t = {"type": "string"}
    elif kind == "b":
        t = {"type": "boolean"}
    elif kind == "f":
        t = {"type": ["number", "string"]}  # non-finite values as "nan", "inf", "-inf"
    elif np.dtype(c.numpy).itemsize == 8:
        t = {"type": ["integer", "string"], "pattern": "^-?[0-9]+$"}  # beyond 2^53 - 1 as decimal strings
    else:
        t = {"type": "integer"}
    if c.count:
        t = {"type": "array", "items": t, "minItems": c.count, "maxItems": c.count}
    description = " ".join(x for x in (doc, f"[{unit}]" if unit else "", f"cbuf type {c.type}") if x)
    return {**t, "description": description}


def json_schema(schema: dict, columns: tuple) -> dict:
    """The JSON Schema of one row message, with each column's unit and doc in its description."""
    info = {c["name"]: c for c in schema.get("columns", [])}
    props = {"row_index": {"type": "integer", "description": "the row's index in the cbuf buffer"}}
    for c in columns:
        props[c.name] = _field_schema(c, str(info.get(c.name, {}).get("unit", "")), str(info.get(c.name, {}).get("doc", "")))
    return {"type": "object", "title": str(schema.get("name", "cbuf")), "properties": props,
            "required": list(props)}


def _column_values(values: np.ndarray, c: LayoutColumn) -> list:
    """One column of a batch as JSON-ready Python values, converted by NumPy in one go (tolist)."""
    if c.numpy.startswith("S"):
        return [b.decode("utf-8", "replace") for b in values.tolist()]
    out = values.tolist()
    if values.dtype.kind == "f" and not np.isfinite(values).all():  # JSON has no NaN or infinities
        out = [[json_float(x) for x in v] if c.count else json_float(v) for v in out]
    elif values.dtype.kind in "iu" and values.dtype.itemsize == 8 and values.size and (
            int(values.max()) > JSON_SAFE_INT or int(values.min()) < -JSON_SAFE_INT):
        out = [[json_int(x) for x in v] if c.count else json_int(v) for v in out]
    return out


def json_int(x: int):
    """The one rule for an integer in JSON rows: a number up to 2^53 - 1 in magnitude, a decimal string beyond
    (JSON readers that hold numbers as doubles - JavaScript's - would round it; replay reads both back)."""
    return x if -JSON_SAFE_INT <= x <= JSON_SAFE_INT else str(x)


def json_float(x: float):
    """The one rule for a float in JSON rows (record, MCAP, Foxglove, `cbuf tail --json`): finite values as
    numbers, NaN and infinities as the strings "nan", "inf", "-inf" (JSON has none of them; replay reads them
    back)."""
    return x if math.isfinite(x) else ("nan" if math.isnan(x) else ("inf" if x > 0 else "-inf"))


def messages(first: int, rows: np.ndarray, columns: tuple, ts_column):
    """(log time in ns, JSON bytes) for each row: the time is the row's `ts_column` (a timestamp_ns column,
    or None) if it is positive, else now."""
    n = len(rows)
    if n == 0:
        return
    names = ["row_index"] + [c.name for c in columns]
    values = [range(first, first + n)] + [_column_values(rows[c.name], c) for c in columns]
    now = time.time_ns()
    stamps = np.maximum(rows[ts_column].astype(np.int64), 0).tolist() if ts_column else [0] * n
    encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
    for i, record in enumerate(zip(*values)):
        yield stamps[i] or now, encode(dict(zip(names, record))).encode()
