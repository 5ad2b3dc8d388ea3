"""The NumPy dtype of a buffer's rows, built from the schema JSON embedded in the file."""
from typing import NamedTuple

import numpy as np

from cbuf_codegen.types import SCALARS

from .errors import FormatError


def column_format(t: str):
    """NumPy format of a schema type: "float32[3]" -> ("<f4", (3,)), "string[16]" -> "S16"."""
    base, _, rest = t.partition("[")
    if base == "string" and rest:
        return f"S{int(rest[:-1])}"
    if base not in SCALARS:
        raise ValueError(f"unknown column type {t!r}")
    return (SCALARS[base].numpy, (int(rest[:-1]),)) if rest else SCALARS[base].numpy


def dtype_from_schema(schema: dict, row_size: int, path: str = "") -> np.dtype:
    try:
        cols = schema["columns"]
        dt = np.dtype({
            "names": [c["name"] for c in cols],
            "formats": [column_format(c["type"]) for c in cols],
            "offsets": [int(c["offset"]) for c in cols],
            "itemsize": row_size,
        })
    except (KeyError, TypeError, ValueError) as e:
        raise FormatError(f"cbuf: {path}: the embedded schema cannot be turned into a NumPy dtype ({e}); "
                          "it lacks column offsets or uses an unknown type - recreate the buffer with a current "
                          "producer", "bad_schema_json", path) from None
    return dt


class Column(NamedTuple):
    """A column as the C++ runtime validated it against the row (cbuf::detail::schema_columns)."""
    name: str
    type: str       # as written in the schema: "float32[3]"
    numpy: str      # NumPy format of one element: "<f4", "S16"
    count: int      # array length, 0 for a scalar or a string
    offset: int


def dtype_from_columns(columns, row_size: int) -> np.dtype:
    """The row dtype from validated columns: names, formats and offsets exactly as the runtime checked them."""
    return np.dtype({
        "names": [c.name for c in columns],
        "formats": [(c.numpy, (c.count,)) if c.count else c.numpy for c in columns],
        "offsets": [c.offset for c in columns],
        "itemsize": row_size,
    })
