"""The NumPy dtype of a buffer's rows, from the columns the C++ runtime validated (cbuf::detail::schema_columns
owns the type table and the layout checks; Python only assembles the dtype from its result), and the one naming
of array elements as flat columns (name[0], name[1], ...) that CSV, Parquet, pandas and the CLI share."""
from typing import NamedTuple

import numpy as np


class LayoutColumn(NamedTuple):
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


def time_column(columns):
    """The name of the column that times a row - the first timestamp_ns column - or None. Replay paces by it,
    plot uses it as the x axis, MCAP and Foxglove as the log time."""
    return next((c.name for c in columns if c.type == "timestamp_ns"), None)


def flat_columns(columns) -> dict:
    """Columns one value wide, in row order: name -> (LayoutColumn, element or None). An array column becomes
    name[0], name[1], ... - the same notation as its type, float32[3]."""
    flat = {}
    for c in columns:
        if c.count:
            flat.update({f"{c.name}[{j}]": (c, j) for j in range(c.count)})
        else:
            flat[c.name] = (c, None)
    return flat


def element(rows: np.ndarray, c: LayoutColumn, j) -> np.ndarray:
    """The part of `rows` flat column (c, j) holds: the column, or element j of an array column (a view)."""
    return rows[c.name] if j is None else rows[c.name][:, j]


def flat_values(rows: np.ndarray, columns) -> dict:
    """The values of each flat column (flat_columns) of `rows`; strings decoded as UTF-8 text."""
    return {name: ([bytes(x).decode("utf-8", "surrogateescape") for x in rows[c.name]] if c.numpy.startswith("S")
                   else element(rows, c, j))
            for name, (c, j) in flat_columns(columns).items()}
