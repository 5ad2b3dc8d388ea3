"""Producing from Python: cbuf.create(schema, ...) for a schema known at run time, and the Producer that a
generated module subclasses with its own schema (sensors.Producer(...)). Same options and defaults as the C++
cbuf::ProducerOptions; the runtime does the writing (one head update per write_batch).

    with cbuf.create({"name": "lab", "capacity": 4096, "columns": [{"name": "t", "type": "timestamp_ns"},
                                                                   {"name": "v", "type": "float32[4]"}]}) as p:
        p.write(t=time.time_ns(), v=[1, 2, 3, 4])          # or p.write({"t": ..., "v": ...}), or a NumPy row
        p.write_batch(rows)                               # a structured array of p.dtype: one head update

Values are checked against the row's types: a wrong shape, a float for an integer, a number that does not fit,
a string longer than its column, an unknown column - each one ValueError naming the column; never a silent
cast. Columns a write leaves out are zero, as in a C++ Row{}.
"""
import json
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Optional, Union

import numpy as np

from . import _core
from ._dtype import LayoutColumn, dtype_from_columns
from ._enums import choice

__all__ = ["Producer", "create"]


class Producer:
    """Writes rows of one schema into a new buffer (or takes over a closed or dead one of its name: a restart).

    schema_json, fingerprint, row_size: the schema as the generator laid it out (a generated module passes its
    own; cbuf.create computes them). name: the buffer's name or path (default: the schema's name). dir: for a
    bare name (default $CBUF_DIR, else /dev/shm). capacity: rows kept (default: the schema's). mode: file mode
    (0o600). replace: take over a closed or dead buffer of the name (a live one never). keep: leave the file,
    marked closed, at close() (else unlink it). mlock, huge_pages: "off", "try" or "require". prefault: touch
    every page at creation. base_index: the index of the first row.
    """

    def __init__(self, schema_json: str, fingerprint: int, row_size: int, name: Optional[str] = None, *,
                 dir: str = "", capacity: Optional[int] = None, mode: int = 0o600, replace: bool = True,
                 keep: bool = True, mlock: str = "off", huge_pages: str = "off", prefault: bool = False,
                 base_index: int = 0):
        _, cols = _core.check_schema(schema_json, row_size, "schema")  # the runtime's check, as every reader's
        self.columns: tuple = tuple(LayoutColumn(*c) for c in cols)
        self.dtype: np.dtype = dtype_from_columns(self.columns, row_size)
        schema = json.loads(schema_json)
        self.schema_name: str = str(schema.get("name", ""))
        if capacity is None:
            capacity = schema.get("capacity") or 1024
        self._p = _core.Producer(
            str(name or self.schema_name), row_size, int(capacity), schema_json, fingerprint, os.fspath(dir), mode,
            on_close=_core.OnClose.keep if keep else _core.OnClose.unlink,
            if_exists=_core.IfExists.replace if replace else _core.IfExists.fail, replace_hint="replace=True",
            base_index=int(base_index), mlock=choice(_core.Feature, mlock, "mlock"),
            huge_pages=choice(_core.Feature, huge_pages, "huge_pages"), prefault=bool(prefault))
        self._one = np.zeros(1, dtype=self.dtype)  # the row write() fills: one array, reused

    @property
    def path(self) -> str:
        return self._p.path

    @property
    def next_index(self) -> int:
        """The index the next row gets."""
        return self._p.next_index

    @property
    def capacity(self) -> int:
        return self._p.capacity

    @property
    def memory(self) -> dict:
        """What mlock and huge pages actually gave: mlocked, page_size, hugetlbfs, thp_advised, prefaulted."""
        return self._p.memory

    @property
    def closed(self) -> bool:
        return self._p.closed

    def write(self, row=None, /, **values) -> int:
        """One row: a NumPy row of this dtype, a dict of column values, or the values as keyword arguments.
        Returns its index."""
        one = self._one
        if row is not None and values:
            raise TypeError("write() takes a row or keyword values, not both")
        if isinstance(row, (np.void, np.ndarray)) and row.dtype == self.dtype and row.size == 1:
            return self._p.write_batch(np.ascontiguousarray(row).reshape(1))
        fields = values if row is None else row
        if not isinstance(fields, dict):
            raise TypeError(f"write() takes a NumPy row of {self.schema_name!r}, a dict or keyword values, not "
                            f"{type(row).__name__}")
        one.view(np.uint8)[:] = 0  # the columns left out, and the padding, are zero
        for name, value in fields.items():
            one[name][0] = _checked_value(self.dtype, name, value)
        return self._p.write_batch(one)

    def write_batch(self, rows: np.ndarray) -> int:
        """Rows of this dtype (a structured array, padding included), with one head update. Returns the index
        of the first."""
        if not isinstance(rows, np.ndarray) or rows.dtype != self.dtype or rows.ndim != 1:
            raise ValueError(f"write_batch() takes a 1-D structured array of the row dtype ({self.dtype}), not "
                             f"{getattr(rows, 'dtype', type(rows).__name__)}")
        return self._p.write_batch(np.ascontiguousarray(rows))

    def skip(self, count: int) -> int:
        """Marks the next `count` rows lost without writing them (readers report them lost). Returns the index
        the next write gets."""
        return self._p.skip(int(count))

    def close(self) -> None:
        """Marks the buffer closed for readers (and removes its name with keep=False). Idempotent."""
        self._p.close()

    def __enter__(self) -> "Producer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"next_index={self.next_index}"
        return f"<cbuf.Producer {self.path!r} schema={self.schema_name!r} capacity={self.capacity} {state}>"


@lru_cache(maxsize=None)
def _bounds(base: np.dtype) -> tuple:
    """(min, max) of an integer dtype, or the largest finite value of a float dtype (twice)."""
    if base.kind == "f":
        top = float(np.finfo(base).max)
        return -top, top
    info = np.iinfo(base)
    return int(info.min), int(info.max)


def _checked_value(dtype: np.dtype, name: str, value):
    """`value` for column `name`, or ValueError naming the column: the value must already be of the column's
    kind (an integer for an integer column, a bool for a bool, a number for a float) and fit it."""
    if dtype.names is None or name not in dtype.names:
        raise ValueError(f"no column {name!r}; the columns are {', '.join(dtype.names or ())}")
    field = dtype[name]
    base, shape = field.base, field.shape
    kind = base.kind
    if kind == "S":
        data = value.encode("utf-8") if isinstance(value, str) else value
        if not isinstance(data, bytes) or len(data) > base.itemsize:
            raise ValueError(f"column {name!r} holds strings of at most {base.itemsize} bytes, not {value!r}")
        return data
    t = type(value)
    if not shape and (t is bool if kind == "b" else t is int if kind in "iu" else t in (int, float)):
        arr = None  # a plain Python scalar: checked without NumPy (the common case of write(col=value))
    else:
        arr = np.asarray(value)
        if arr.shape != shape or arr.dtype.kind not in {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}[kind]:
            want = f"{base} x {shape[0]}" if shape else str(base)
            raise ValueError(f"column {name!r} takes {want}, not {value!r}")
    if kind != "b":
        lo, hi = _bounds(base)
        if arr is None:
            bad = not lo <= value <= hi if kind in "iu" else (math.isfinite(value) and not lo <= value <= hi)
        elif arr.size == 0:
            bad = False
        elif kind in "iu":
            bad = arr.min() < lo or arr.max() > hi
        else:
            finite = arr[np.isfinite(arr)] if arr.dtype.kind == "f" else arr
            bad = finite.size > 0 and (finite.min() < lo or finite.max() > hi)
        if bad:
            raise ValueError(f"column {name!r} ({base}) cannot hold {value!r}")
    return value if arr is None else arr.astype(base)


def create(schema: Union[dict, str, "os.PathLike[str]"], name: Optional[str] = None, **options) -> Producer:
    """A producer for a schema known at run time: a dict, JSON text, or the path of a schema file - checked and
    laid out by the generator, exactly as `cbuf gen` would (same offsets, same fingerprint). Options as for
    Producer."""
    from cbuf_codegen import model as _model, validate as _validate
    from cbuf_codegen.errors import SchemaError
    from cbuf_codegen.pipeline import load_model
    from .errors import Error
    try:
        if isinstance(schema, dict):
            m = _model.build("schema", _validate.validate("schema", schema))
        elif isinstance(schema, str) and schema.lstrip().startswith("{"):
            m = _model.build("schema", _validate.validate("schema", json.loads(schema)))
        else:
            m = load_model(Path(schema))
    except (SchemaError, ValueError) as e:  # the generator's one line: the JSON pointer and the fix
        raise Error(str(e), "bad_schema", "" if isinstance(schema, dict) else str(schema)) from None
    return Producer(m.canonical_json, m.fingerprint, m.row_size, name, **options)
