"""Recordings: what `cbuf record` writes and `cbuf replay` reads - .npy (+ a .cbuf.json sidecar), .csv,
.parquet, and, with their optional packages, .h5 (HDF5, _hdf5.py) and .mcap (MCAP, _mcap.py), each carrying the
schema with the data. The first three are written when the recording ends; HDF5 and MCAP stream as rows come.

A recording is untrusted input like a buffer file: every way it can be damaged ends in one RecordingError that
names the file and says what is wrong, before anything is created. The schema inside is checked by the runtime
(`_core.check_schema`, the check every reader relies on) and the row dtype built from its result.
"""
import csv
import json
import os
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import _core
from ._dtype import Column, dtype_from_columns, element, flat_columns, flat_values
from .errors import CliError, Error

FORMATS = (".npy", ".csv", ".parquet", ".h5", ".mcap")
_FORMAT_LIST = ".npy, .csv, .parquet, .h5 or .mcap"


class RecordingError(CliError):
    """A recording that cannot be read or written: the message names the file."""


class Recording(NamedTuple):
    meta: dict          # the metadata written by cbuf record (schema_json, fingerprint, row_size, ...)
    schema: dict        # the schema as the runtime parsed it
    columns: tuple      # validated columns (Column)
    data: np.ndarray    # the rows, in the buffer's row dtype (itemsize = row_size, padding included)


# --- metadata ---------------------------------------------------------------------------------------------
def make_meta(source: str, schema: dict, fingerprint: int, row_size: int, first: int, rows: int, lost: int,
              lost_ranges: list, restarts: list) -> dict:
    return {"cbuf_recording": 1, "source": source, "schema_json": json.dumps(schema, separators=(",", ":")),
            "fingerprint": fingerprint, "row_size": row_size, "first_index": first, "rows": rows,
            "lost": lost, "lost_ranges": lost_ranges[:1000], "restarts": restarts}


def _checked(meta, where: str):
    """(schema, columns, dtype) from recording metadata, or RecordingError naming `where`."""
    if not isinstance(meta, dict) or meta.get("cbuf_recording", 1) != 1:
        raise RecordingError(f"{where}: not cbuf recording metadata (a JSON object with schema_json, row_size "
                             "and fingerprint)")
    schema_json, row_size, fingerprint = meta.get("schema_json"), meta.get("row_size"), meta.get("fingerprint")
    if not isinstance(schema_json, str) or not isinstance(row_size, int) or not isinstance(fingerprint, int) \
            or isinstance(row_size, bool) or not 0 < row_size <= 1 << 24 or not 0 <= fingerprint < 2**64:
        raise RecordingError(f"{where}: recording metadata lacks a valid schema_json, row_size or fingerprint")
    try:
        canonical, cols = _core.check_schema(schema_json, row_size, where)
    except Error as e:
        raise RecordingError(str(e).removeprefix("cbuf: ")) from None
    columns = tuple(Column(*c) for c in cols)
    return json.loads(canonical), columns, dtype_from_columns(columns, row_size)


# --- writing ----------------------------------------------------------------------------------------------
def check_writable(out: Path, force: bool) -> None:
    """Refuses, before recording starts, an output that cannot or should not be written."""
    if out.suffix not in FORMATS:
        raise RecordingError(f"{out}: unknown format {out.suffix!r}; use {_FORMAT_LIST}")
    if out.suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise RecordingError(f"{out}: writing Parquet needs pyarrow (pip install pyarrow)") from None
    if out.suffix == ".h5":
        from . import _hdf5
        _hdf5._require()
    if out.suffix == ".mcap":
        from . import _mcap
        _mcap._require()
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise RecordingError(f"{out}: cannot write it: directory {folder} does not exist")
    if out.exists() and not force:
        raise RecordingError(f"{out}: exists already; choose another name, or use --force to overwrite it")
    if not os.access(folder, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise RecordingError(f"{out}: cannot write it: permission denied")


def csv_cell(v) -> str:
    """Exact text for a CSV cell: repr() of a float round-trips it (float32 included), bools are 0/1."""
    if isinstance(v, np.floating):
        return repr(float(v))
    if isinstance(v, (np.bool_, bool)):
        return "1" if v else "0"
    if isinstance(v, (np.integer, int)):
        return str(int(v))
    return v


class _Buffered:
    """The writer of the formats written at the end (.npy, .csv, .parquet): keeps the rows, then save()."""

    def __init__(self, out: Path, dtype: np.dtype):
        self.out, self.dtype, self.chunks = out, dtype, []

    def append(self, first: int, rows: np.ndarray) -> None:
        self.chunks.append(rows.copy())

    def lost(self, start: int, stop: int) -> None:
        pass  # in the metadata's lost_ranges

    def idle(self) -> None:
        pass

    def finish(self, meta: dict, epoch: int) -> None:
        data = np.empty(sum(len(c) for c in self.chunks), dtype=self.dtype)  # the row layout, padding included
        at = 0
        for c in self.chunks:
            data[at:at + len(c)] = c
            at += len(c)
        save(self.out, data, meta)

    def abort(self) -> None:
        pass


def open_writer(out: Path, meta: dict, dtype: np.dtype, columns: tuple):
    """A writer for `out` by its suffix: append(first, rows), lost(start, stop), idle() while nothing comes,
    then finish(meta, epoch) (or abort()). HDF5 and MCAP write as rows come; the other formats when the recording ends."""
    try:
        if out.suffix == ".h5":
            from . import _hdf5
            return _hdf5.Writer(out, meta, dtype, columns)
        if out.suffix == ".mcap":
            from . import _mcap
            return _mcap.Writer(out, meta, dtype, columns)
    except OSError as e:
        raise RecordingError(f"{out}: cannot write it: {e.strerror or e}") from None
    return _Buffered(out, dtype)


def save(out: Path, data: np.ndarray, meta: dict) -> None:
    """Writes the recording under a hidden temporary name, then renames it into place: a failure (a full or
    read-only file system) leaves nothing behind and is reported with the user's file name."""
    _, columns, dtype = _checked(meta, str(out))
    tmp = out.with_name(f".{out.name}.partial{out.suffix}")
    side = Path(str(out) + ".cbuf.json")
    side_tmp = side.with_name(f".{side.name}.partial")
    try:
        if out.suffix == ".npy":
            np.save(tmp, data.astype(dtype, copy=False))
            side_tmp.write_text(json.dumps(meta, indent=1) + "\n")
        elif out.suffix == ".csv":
            with open(tmp, "w", newline="", errors="surrogateescape") as f:
                f.write("# cbuf " + json.dumps(meta, separators=(",", ":")) + "\n")
                cols = flat_values(data, columns)
                w = csv.writer(f)
                w.writerow(cols)
                for i in range(len(data)):
                    w.writerow(csv_cell(v[i]) for v in cols.values())
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq
            cols = flat_values(data, columns)
            for k, v in cols.items():  # strings: UTF-8 text where they are, the exact bytes where not
                if isinstance(v, list) and any("\udc80" <= ch <= "\udcff" for s in v for ch in s):
                    cols[k] = pa.array([s.encode("utf-8", "surrogateescape") for s in v], type=pa.binary())
            table = pa.table(cols)
            pq.write_table(table.replace_schema_metadata({"cbuf": json.dumps(meta)}), tmp)
        os.replace(tmp, out)
        if out.suffix == ".npy":
            os.replace(side_tmp, side)
    except OSError as e:
        for p in (tmp, side_tmp):
            try:
                p.unlink()
            except OSError:
                pass
        raise RecordingError(f"{out}: cannot write it: {e.strerror or e}") from None


# --- reading ----------------------------------------------------------------------------------------------
def bad(path: Path, what: str) -> RecordingError:
    return RecordingError(f"{path}: {what}; is it a recording made by cbuf record, complete and unchanged?")


def load(path: Path) -> Recording:
    """Reads and checks a whole recording; any damage is a RecordingError naming the file."""
    if not path.exists():
        raise RecordingError(f"{path}: no such file")
    if path.suffix not in FORMATS:
        raise RecordingError(f"{path}: unknown format; replay reads {_FORMAT_LIST} recordings")
    try:
        rec = {".npy": _load_npy, ".csv": _load_csv, ".parquet": _load_parquet, ".h5": _load_hdf5,
               ".mcap": _load_mcap}[path.suffix](path)
    except RecordingError:
        raise
    except OSError as e:
        raise RecordingError(f"{path}: cannot read it: {e.strerror or e}") from None
    if len(rec.data) == 0:
        raise RecordingError(f"{path}: holds no rows; nothing to replay")
    return rec


def _load_npy(path: Path) -> Recording:
    side = Path(str(path) + ".cbuf.json")
    if not side.exists():
        raise RecordingError(f"{path}: its schema file {side.name} is missing; record with cbuf record")
    try:
        meta = json.loads(side.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise bad(side, f"not valid JSON ({e})") from None
    schema, columns, dtype = _checked(meta, str(side))
    try:
        raw = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, zipfile.BadZipFile) as e:
        raise bad(path, f"not a readable .npy array ({e})") from None
    if not isinstance(raw, np.ndarray) or raw.dtype.names is None or raw.ndim != 1:
        raise bad(path, f"holds a plain {raw.dtype} array, not rows of the schema in {side.name}")
    data = np.zeros(len(raw), dtype=dtype)
    for c in columns:  # field by field: a packed copy (numpy drops padding) comes back to the row layout
        if c.name not in raw.dtype.names or raw.dtype[c.name] != dtype[c.name]:
            raise bad(path, f"column {c.name!r} is missing or of another type than {side.name} says")
        data[c.name] = raw[c.name]
    return Recording(meta, schema, columns, data)


def _load_csv(path: Path) -> Recording:
    with open(path, newline="", errors="surrogateescape") as f:
        first = f.readline()
        if not first.startswith("# cbuf "):
            raise RecordingError(f"{path}: not a cbuf recording (no '# cbuf' header line)")
        try:
            meta = json.loads(first[7:])
        except ValueError as e:
            raise bad(path, f"its '# cbuf' header line is not valid JSON ({e})") from None
        schema, columns, dtype = _checked(meta, str(path))
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise bad(path, "it has no column header line")
        rows = list(reader)
    targets = flat_columns(columns)
    for name in header:
        if name not in targets:
            raise bad(path, f"column {name!r} is not in the recording's schema")
    missing = [n for n in targets if n not in header]
    if missing:
        raise bad(path, f"column {missing[0]!r} of the schema is missing")
    data = np.zeros(len(rows), dtype=dtype)
    for line, row in enumerate(rows, start=3):
        if len(row) != len(header):
            raise bad(path, f"line {line} has {len(row)} values, the header {len(header)} (truncated?)")
    for k, name in enumerate(header):
        c, j = targets[name]
        target = element(data, c, j)
        try:
            if c.numpy.startswith("S"):
                target[:] = [row[k].encode("utf-8", "surrogateescape") for row in rows]
            else:
                conv = float if target.dtype.kind == "f" else int
                target[:] = [conv(row[k]) for row in rows]
        except (ValueError, OverflowError):
            i = next(i for i, row in enumerate(rows) if not _parses(row[k], target.dtype))
            raise bad(path, f"line {i + 3}, column {name!r}: {rows[i][k]!r} is not a {c.type} value") from None
    return Recording(meta, schema, columns, data)


def _parses(text: str, dtype: np.dtype) -> bool:
    try:
        np.array([float(text) if dtype.kind == "f" else int(text)], dtype=dtype)
        return True
    except (ValueError, OverflowError):
        return False


def _load_parquet(path: Path) -> Recording:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise RecordingError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises its own ArrowInvalid/ArrowIOError hierarchy for damaged files
        raise bad(path, f"not a readable Parquet file ({e})") from None
    metadata = table.schema.metadata or {}
    if b"cbuf" not in metadata:
        raise RecordingError(f"{path}: not a cbuf recording (no 'cbuf' entry in the Parquet metadata)")
    try:
        meta = json.loads(metadata[b"cbuf"])
    except ValueError as e:
        raise bad(path, f"its 'cbuf' metadata is not valid JSON ({e})") from None
    schema, columns, dtype = _checked(meta, str(path))
    data = np.zeros(table.num_rows, dtype=dtype)
    for name, (c, j) in flat_columns(columns).items():
        if name not in table.column_names:
            raise bad(path, f"column {name!r} of the schema is missing")
        vals = table.column(name).to_pylist()
        try:
            element(data, c, j)[:] = [v if isinstance(v, bytes) else str(v).encode() for v in vals] \
                if c.numpy.startswith("S") else vals
        except (TypeError, ValueError, OverflowError) as e:
            raise bad(path, f"column {name!r} does not hold {c.type} values ({e})") from None
    return Recording(meta, schema, columns, data)


def _load_hdf5(path: Path) -> Recording:
    from . import _hdf5
    meta, raw = _hdf5.load(path)
    schema, columns, dtype = _checked(meta, str(path))
    data = np.zeros(len(raw), dtype=dtype)
    for c in columns:  # field by field, as for .npy: the row layout whatever HDF5 made of the padding
        if c.name not in raw.dtype.names or raw.dtype[c.name].shape != dtype[c.name].shape:
            raise bad(path, f"column {c.name!r} of /rows is missing or of another shape than the schema says")
        data[c.name] = raw[c.name]
    return Recording(meta, schema, columns, data)


def _load_mcap(path: Path) -> Recording:
    from . import _mcap
    meta, data = _mcap.load(path, lambda m: _checked(m, str(path))[1:])
    schema, columns, _ = _checked(meta, str(path))
    return Recording(meta, schema, columns, data)
