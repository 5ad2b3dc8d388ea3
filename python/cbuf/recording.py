"""Recordings: what `cbuf record` writes and `cbuf replay` reads - .npy (+ a .cbuf.json sidecar), .csv,
.parquet, and, with their optional packages, .h5 (HDF5, _hdf5.py) and .mcap (MCAP, _mcap.py), each carrying the
schema with the data. The first three are written when the recording ends; HDF5 and MCAP stream as rows come.

Every format is written under a hidden partial name beside the output (`.run.h5.partial.h5`, see Output) and
renamed into place only when it is complete: a user's existing file is never touched before its replacement is
whole, and a failure (a full or read-only file system) removes the partial file and is one RecordingError
naming the user's file.

A recording is untrusted input like a buffer file: every way it can be damaged ends in one RecordingError that
names the file and says what is wrong, before anything is created. load() checks the whole recording in one
streaming pass with bounded memory (batches of BATCH rows; sizes the file declares are checked against what it
holds), and Recording.batches() reads it again, in the order it was recorded. The schema inside is checked by
the runtime (`_core.check_schema`, the check every reader relies on) and the row dtype built from its result.
"""
import csv
import json
import os
import zipfile
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Optional

import numpy as np

from . import _core
from ._dtype import LayoutColumn, dtype_from_columns, element, flat_columns, flat_values
from ._recfile import BATCH, RecordingError, bad, json_loads  # noqa: F401 - RecordingError is API here
from .errors import Error, require

FORMATS = (".npy", ".csv", ".parquet", ".h5", ".mcap")
_FORMAT_LIST = ".npy, .csv, .parquet, .h5 or .mcap"


class Recording(NamedTuple):
    meta: dict          # the metadata written by cbuf record (schema_json, fingerprint, row_size, ...)
    schema: dict        # the schema as the runtime parsed it
    columns: tuple      # validated columns (LayoutColumn)
    dtype: np.dtype     # the buffer's row dtype (itemsize = row_size, padding included)
    rows: int           # rows in the recording (counted by load()'s checking pass)
    indexed: Callable[[], Iterator[tuple]]  # (rows, indices) again, in recorded order, BATCH at a time; the
    first_index: Optional[int]  # indices are the recorded ones when first_index is not None, else None
    last_index: Optional[int]   # the last recorded index (with first_index)

    def batches(self) -> Iterator[np.ndarray]:
        """The rows again, in recorded order, BATCH at a time."""
        return (rows for rows, _ in self.indexed())

    @property
    def data(self) -> np.ndarray:
        """Every row in one array: for small recordings and tests (replay streams batches())."""
        return concat_rows(list(self.batches()), self.dtype)


def concat_rows(parts: list, dtype: np.dtype) -> np.ndarray:
    """Batches of rows as one array with exactly their bytes, padding included (NumPy's own concatenation and
    field-wise assignment leave padding out, which would put whatever memory held there in a recording)."""
    data = np.empty(sum(len(p) for p in parts), dtype=dtype)
    raw, at = data.view(np.dtype((np.void, dtype.itemsize))), 0
    for p in parts:
        raw[at:at + len(p)] = np.ascontiguousarray(p).view(raw.dtype)
        at += len(p)
    return data


# --- metadata ---------------------------------------------------------------------------------------------
def make_meta(source: str, schema: dict, fingerprint: int, row_size: int, first: int, rows: int, lost: int,
              lost_ranges: list, restarts: list) -> dict:
    return {"cbuf_recording": 1, "source": source, "schema_json": json.dumps(schema, separators=(",", ":")),
            "fingerprint": fingerprint, "row_size": row_size, "first_index": first, "rows": rows,
            "lost": lost, "lost_ranges": lost_ranges[:1000], "restarts": restarts}


def checked(meta, where: str):
    """(schema, columns, dtype) from recording metadata, or RecordingError naming `where`."""
    if not isinstance(meta, dict) or meta.get("cbuf_recording", 1) != 1:
        raise RecordingError(f"{where}: not cbuf recording metadata (a JSON object with schema_json, row_size "
                             "and fingerprint)")
    schema_json, row_size, fingerprint = meta.get("schema_json"), meta.get("row_size"), meta.get("fingerprint")
    if not isinstance(schema_json, str) or not isinstance(row_size, int) or not isinstance(fingerprint, int) \
            or isinstance(row_size, bool) or not 0 < row_size <= _core.MAX_ROW_SIZE or not 0 <= fingerprint < 2**64:
        raise RecordingError(f"{where}: recording metadata lacks a valid schema_json, row_size or fingerprint")
    try:
        canonical, cols = _core.check_schema(schema_json, row_size, where)
    except Error as e:
        raise RecordingError(str(e).removeprefix("cbuf: ")) from None
    columns = tuple(LayoutColumn(*c) for c in cols)
    return json.loads(canonical), columns, dtype_from_columns(columns, row_size)


def to_rows(raw: np.ndarray, dtype: np.dtype, columns: tuple, where, what: str) -> np.ndarray:
    """Rows of `dtype` from stored rows: the stored bytes as they are when the stored type is the row type
    (padding included), else column by column - each column's stored type must be the schema's exactly, so a
    value is never converted silently (1e300 into an int8, -1 into a uint64)."""
    if raw.dtype == dtype:
        return np.ascontiguousarray(raw)
    names = raw.dtype.names or ()
    data = np.zeros(len(raw), dtype=dtype)
    for c in columns:
        if c.name not in names or raw.dtype[c.name] != dtype[c.name]:
            stored = raw.dtype[c.name] if c.name in names else "missing"
            raise bad(where, f"column {c.name!r} of {what} is {stored}, not the schema's {c.type}")
        data[c.name] = raw[c.name]
    return data


# --- writing ----------------------------------------------------------------------------------------------
def check_writable(out: Path, force: bool) -> None:
    """Refuses, before recording starts, an output that cannot or should not be written."""
    if out.suffix not in FORMATS:
        raise RecordingError(f"{out}: unknown format {out.suffix!r}; use {_FORMAT_LIST}")
    if out.suffix == ".parquet":
        require("pyarrow", "parquet", "Parquet recordings")
    if out.suffix == ".h5":
        from . import _hdf5
        _hdf5.require_packages()
    if out.suffix == ".mcap":
        from . import _mcap
        _mcap.require_packages()
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise RecordingError(f"{out}: cannot write it: directory {folder} does not exist")
    if out.exists() and not force:
        raise RecordingError(f"{out}: exists already; choose another name, or use --force to overwrite it")
    partial = Output(out).tmp
    if partial.exists() and not force:
        raise RecordingError(f"{out}: {partial.name} is there, the partial file of a recording that was stopped "
                             "before it ended; rename it to keep it, or use --force to overwrite it")
    if not os.access(folder, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise RecordingError(f"{out}: cannot write it: permission denied")


class Output:
    """The file a recording is written to: a hidden partial name beside `out` (`.run.h5.partial.h5`), renamed
    over `out` by commit() when the recording is complete. Until then the user's `out` is untouched; a recorder
    killed with kill -9 leaves the partial file (what the format keeps of it is in docs/cli.md)."""

    def __init__(self, out: Path):
        self.out = out
        self.tmp = out.with_name(f".{out.name}.partial{out.suffix}")

    def failed(self, e: BaseException) -> RecordingError:
        """The error for a write that failed (a full or read-only file system), after removing the partial file."""
        self.discard()
        if isinstance(e, RecordingError):
            return e
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
        reason = reason.strip().splitlines()[0] if reason.strip() else type(e).__name__
        return RecordingError(f"{self.out}: cannot write it: {reason}")

    def discard(self) -> None:
        try:
            self.tmp.unlink()
        except OSError:
            pass

    def commit(self) -> None:
        os.replace(self.tmp, self.out)


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
        self.chunks.append(concat_rows([rows], self.dtype))  # not rows.copy(): that leaves the padding out

    def lost(self, start: int, stop: int) -> None:
        pass  # in the metadata's lost_ranges

    def idle(self) -> None:
        pass

    def finish(self, meta: dict, epoch: int) -> None:
        save(self.out, concat_rows(self.chunks, self.dtype), meta)

    def abort(self) -> None:
        pass


def open_writer(out: Path, meta: dict, dtype: np.dtype, columns: tuple):
    """A writer for `out` by its suffix: append(first, rows), lost(start, stop), idle() while nothing comes,
    then finish(meta, epoch) (or abort()). Each raises RecordingError naming `out` when the file system fails
    it, after removing its partial file. HDF5 and MCAP write as rows come; the other formats when the
    recording ends."""
    if out.suffix == ".h5":
        from . import _hdf5
        return _hdf5.Writer(Output(out), meta, dtype, columns)
    if out.suffix == ".mcap":
        from . import _mcap
        return _mcap.Writer(Output(out), meta, dtype, columns)
    return _Buffered(out, dtype)


def save(out: Path, data: np.ndarray, meta: dict) -> None:
    """Writes a whole recording under the partial name, then renames it into place (Output)."""
    _, columns, dtype = checked(meta, str(out))
    o = Output(out)
    side = Output(Path(str(out) + ".cbuf.json"))
    try:
        if out.suffix == ".npy":
            data = np.ascontiguousarray(data.astype(dtype, copy=False))
            with open(o.tmp, "wb") as f:  # the header, then the rows' bytes by write(): a full disk is ENOSPC
                header = np.lib.format.header_data_from_array_1_0(data)
                try:
                    np.lib.format.write_array_header_1_0(f, header)
                except ValueError:  # a header beyond 64 KiB (thousands of columns): version 2.0
                    np.lib.format.write_array_header_2_0(f, header)
                f.write(data.view(np.uint8))
            side.tmp.write_text(json.dumps(meta, indent=1) + "\n")
        elif out.suffix == ".csv":
            with open(o.tmp, "w", newline="", errors="surrogateescape") as f:
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
            info = {c.get("name"): c for c in json.loads(meta["schema_json"]).get("columns", [])}
            flat = flat_columns(columns)
            fields = []  # each column's type, unit and doc in its own field metadata, for tools that show them
            for f in table.schema:
                c = flat[f.name][0]
                extra = {k: str(info.get(c.name, {}).get(k, "")) for k in ("unit", "doc")}
                fields.append(f.with_metadata({"cbuf_type": c.type, **{k: v for k, v in extra.items() if v}}))
            table = table.cast(pa.schema(fields, metadata={"cbuf": json.dumps(meta)}))
            pq.write_table(table, o.tmp)
        o.commit()
        if out.suffix == ".npy":
            side.commit()
    except OSError as e:
        side.discard()
        raise o.failed(e) from None


# --- reading ----------------------------------------------------------------------------------------------
def load(path: Path) -> Recording:
    """Opens and checks a whole recording, streaming (bounded memory); any damage is a RecordingError naming
    the file. The returned Recording's batches() reads the rows again."""
    if not path.exists():
        raise RecordingError(f"{path}: no such file")
    if path.suffix not in FORMATS:
        raise RecordingError(f"{path}: unknown format; replay reads {_FORMAT_LIST} recordings")
    try:
        if path.suffix == ".h5":
            from . import _hdf5
            meta, batches = _hdf5.open_rows(path, checked, to_rows)
        elif path.suffix == ".mcap":
            from . import _mcap
            meta, batches = _mcap.open_rows(path, checked)
        else:
            meta, batches = {".npy": _open_npy, ".csv": _open_csv, ".parquet": _open_parquet}[path.suffix](path)
        schema, columns, dtype = checked(meta, str(path) if path.suffix != ".npy" else f"{path}.cbuf.json")
        indexed = _with_indices(batches, meta)
        rows, first, last, rising = 0, None, -1, True  # the checking pass: every row decoded once, nothing kept
        for b, idx in indexed():
            rows += len(b)
            if not rising or not len(b):
                continue
            # The recorded indices are kept only while they rise: a recording across a producer restart (the
            # indices start over) is replayed with the rows renumbered from the first.
            if idx is None or int(idx[0]) <= last or (len(idx) > 1 and (idx[1:] <= idx[:-1]).any()) \
                    or int(idx[-1]) >= _core.INDEX_LIMIT:
                rising = False
                continue
            first = int(idx[0]) if first is None else first
            last = int(idx[-1])
        first, last = (first, last) if rising and first is not None else (None, None)
    except RecordingError:
        raise
    except OSError as e:
        raise RecordingError(f"{path}: cannot read it: {e.strerror or e}") from None
    except MemoryError:
        raise bad(path, "it declares more data than this machine can hold") from None
    if rows == 0:
        raise RecordingError(f"{path}: holds no rows; nothing to replay")
    return Recording(meta, schema, columns, dtype, rows, indexed, first, last)


def _with_indices(batches, meta: dict):
    """(rows, indices) batches: the indices the file stores per row (HDF5, MCAP), else, for the formats without
    them, the ones the metadata implies - from first_index, counting the lost ranges - when it is complete (one
    producer epoch, every lost range listed); else None."""
    first, ranges = meta.get("first_index"), meta.get("lost_ranges")
    complete = (isinstance(first, int) and 0 <= first < _core.INDEX_LIMIT and isinstance(ranges, list)
                and not meta.get("restarts") and all(isinstance(r, list) and len(r) == 2 for r in ranges)
                and sum(int(b) - int(a) for a, b in ranges) == meta.get("lost"))

    def gen():
        at, gaps = first, sorted((int(a), int(b)) for a, b in ranges) if complete else []
        for b in batches():
            rows, idx = b if isinstance(b, tuple) else (b, None)
            if idx is None and complete:
                runs, left = [], len(rows)
                while left:
                    while gaps and gaps[0][0] <= at:  # the rows recorded after a lost range start past it
                        at = max(at, gaps.pop(0)[1])
                    run = left if not gaps else min(left, gaps[0][0] - at)
                    runs.append(np.arange(at, at + run, dtype=np.uint64))
                    at, left = at + run, left - run
                idx = np.concatenate(runs) if runs else np.zeros(0, dtype=np.uint64)
            yield rows, idx
    return gen


def _open_npy(path: Path):
    side = Path(str(path) + ".cbuf.json")
    if not side.exists():
        raise RecordingError(f"{path}: its schema file {side.name} is missing; record with cbuf record")
    meta = json_loads(side.read_bytes(), side, "it")
    _, columns, dtype = checked(meta, str(side))
    try:  # mapped, not read: the file's size is checked against its header and rows are read as needed
        raw = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, EOFError, OSError, zipfile.BadZipFile) as e:
        raise bad(path, f"not a readable .npy array ({e})") from None
    if not isinstance(raw, np.ndarray) or raw.dtype.names is None or raw.ndim != 1:
        raise bad(path, f"holds a plain {raw.dtype} array, not rows of the schema in {side.name}")

    def batches():
        for at in range(0, len(raw), BATCH):
            yield to_rows(raw[at:at + BATCH], dtype, columns, path, side.name)
    return meta, batches


def _open_csv(path: Path):
    with open(path, newline="", errors="surrogateescape") as f:
        first = f.readline(1 << 20)
    if not first.startswith("# cbuf "):
        raise RecordingError(f"{path}: not a cbuf recording (no '# cbuf' header line)")
    meta = json_loads(first[7:], path, "its '# cbuf' header line")
    _, columns, dtype = checked(meta, str(path))
    targets = flat_columns(columns)

    def convert(lines: list, header: list, line0: int) -> np.ndarray:
        data = np.zeros(len(lines), dtype=dtype)
        for i, row in enumerate(lines):
            if len(row) != len(header):
                raise bad(path, f"line {line0 + i} has {len(row)} values, the header {len(header)} (truncated?)")
        for k, name in enumerate(header):
            c, j = targets[name]
            target = element(data, c, j)
            try:
                if c.numpy.startswith("S"):
                    target[:] = [row[k].encode("utf-8", "surrogateescape") for row in lines]
                else:
                    conv = float if target.dtype.kind == "f" else int
                    target[:] = [conv(row[k]) for row in lines]
            except (ValueError, OverflowError):
                i = next(i for i, row in enumerate(lines) if not _parses(row[k], target.dtype))
                raise bad(path, f"line {line0 + i}, column {name!r}: {lines[i][k]!r} is not a {c.type} value") \
                    from None
        return data

    def batches():
        with open(path, newline="", errors="surrogateescape") as f:
            f.readline(1 << 20)
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise bad(path, "it has no column header line")
            for name in header:
                if name not in targets:
                    raise bad(path, f"column {name!r} is not in the recording's schema")
            missing = [n for n in targets if n not in header]
            if missing:
                raise bad(path, f"column {missing[0]!r} of the schema is missing")
            line, lines = 3, []
            for row in reader:
                lines.append(row)
                if len(lines) == BATCH:
                    yield convert(lines, header, line)
                    line, lines = line + BATCH, []
            if lines:
                yield convert(lines, header, line)
    return meta, batches


def _parses(text: str, dtype: np.dtype) -> bool:
    try:
        np.array([float(text) if dtype.kind == "f" else int(text)], dtype=dtype)
        return True
    except (ValueError, OverflowError):
        return False


def _open_parquet(path: Path):
    pq = require("pyarrow.parquet", "parquet", "Parquet recordings")
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises its own ArrowInvalid/ArrowIOError hierarchy for damaged files
        raise bad(path, f"not a readable Parquet file ({e})") from None
    metadata = pf.schema_arrow.metadata or {}
    if b"cbuf" not in metadata:
        raise RecordingError(f"{path}: not a cbuf recording (no 'cbuf' entry in the Parquet metadata)")
    meta = json_loads(metadata[b"cbuf"], path, "its 'cbuf' metadata")
    _, columns, dtype = checked(meta, str(path))
    flat = flat_columns(columns)
    for name in flat:
        if name not in pf.schema_arrow.names:
            raise bad(path, f"column {name!r} of the schema is missing")

    def batches():
        try:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH, columns=list(flat)):
                data = np.zeros(batch.num_rows, dtype=dtype)
                for name, (c, j) in flat.items():
                    vals = batch.column(name).to_pylist()
                    try:
                        element(data, c, j)[:] = [v if isinstance(v, bytes) else str(v).encode() for v in vals] \
                            if c.numpy.startswith("S") else vals
                    except (TypeError, ValueError, OverflowError) as e:
                        raise bad(path, f"column {name!r} does not hold {c.type} values ({e})") from None
                yield data
        except RecordingError:
            raise
        except Exception as e:  # a damaged page or footer, found while reading
            raise bad(path, f"not a readable Parquet file ({e})") from None
    return meta, batches
