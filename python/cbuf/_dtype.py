"""The NumPy dtype of a buffer's rows, from the columns the C++ runtime validated (cbuf::detail::schema_columns
owns the type table and the layout checks; Python only assembles the dtype from its result)."""
from typing import NamedTuple

import numpy as np


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
