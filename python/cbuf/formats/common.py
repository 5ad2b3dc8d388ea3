"""What every recording format shares: the error, the metadata and its checks, the write-then-rename output,
the streams a writer is given, and the exact-bytes rule.

Exact bytes: a recording that stores rows as bytes (.npy, .h5, MCAP's cdr) holds exactly the buffer's bytes,
padding included. NumPy drops padding on many copies of a structured array (`copy()`, `concatenate`, field-wise
assignment leave whatever memory held there), so rows are handed on as `raw(rows)` - their bytes - and turned
back into rows only by viewing bytes, never by copying fields.
"""
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Optional

import numpy as np

from .. import _core
from .._dtype import LayoutColumn, dtype_from_columns, element, flat_columns
from ..errors import Error

BATCH = 4096          # rows a loader hands over at a time: the memory a replay needs is a few batches
FLUSH_SECONDS = 0.5   # a streaming writer makes what it wrote durable at least this often (a kill -9 keeps it)
META_VERSION = 1      # "cbuf_recording" in the metadata


class RecordingError(Error):
    """A recording that cannot be read or written: the message names the file."""


def bad(path, what: str) -> RecordingError:
    return RecordingError(f"{path}: {what}; is it a recording made by cbuf record, complete and unchanged?")


@contextmanager
def reading(path):
    """Reading a recording: the file system's errors, and a file declaring more than memory holds, become one
    RecordingError naming it."""
    try:
        yield
    except RecordingError:
        raise
    except OSError as e:
        raise RecordingError(f"{path}: cannot read it: {e.strerror or e}") from None
    except MemoryError:
        raise bad(path, "it declares more data than this machine can hold") from None


def json_loads(text, path, what: str):
    """json.loads for text from a recording: nesting deep enough to exhaust Python's stack is damage too."""
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError, TypeError) as e:
        reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise bad(path, f"{what} is not valid JSON ({reason})") from None


# --- rows as bytes ----------------------------------------------------------------------------------------
def raw(rows: np.ndarray) -> np.ndarray:
    """The rows' bytes, padding included, as one uint8 array (a view where the rows are contiguous)."""
    if not rows.flags.c_contiguous:  # a strided view: copy whole items as opaque bytes, not field by field
        rows = rows.view(np.dtype((np.void, rows.dtype.itemsize))).copy().view(rows.dtype)
    return rows.view(np.uint8).reshape(-1)


def concat_rows(parts: list, dtype: np.dtype) -> np.ndarray:
    """Batches of rows as one new array with exactly their bytes (NumPy's own concatenation and copy() leave
    padding out)."""
    out = np.empty(sum(len(p) for p in parts), dtype=dtype)
    into, at = out.view(np.uint8), 0
    for p in parts:
        b = raw(p)
        into[at:at + len(b)] = b
        at += len(b)
    return out


def arrow_arrays(rows: np.ndarray, columns: tuple) -> dict:
    """A batch as pyarrow arrays, one per flat column (name[0], name[1], ... for an array column) - what the
    Parquet and CSV writers build on. Strings are binary, their exact bytes; every other column its own type."""
    import pyarrow as pa
    out = {}
    for name, (c, j) in flat_columns(columns).items():
        v = element(rows, c, j)
        out[name] = pa.array(v, type=pa.binary()) if c.numpy.startswith("S") else pa.array(np.ascontiguousarray(v))
    return out


# --- metadata ---------------------------------------------------------------------------------------------
MAX_LISTED = 1000  # lost ranges and restarts listed in the metadata at most (the totals are always exact)


def make_meta(source: str, schema: dict, fingerprint: int, row_size: int, first: int, rows: int, lost: int,
              lost_ranges: list, restarts: list, **extra) -> dict:
    """The metadata every format carries. `complete` is False while a recording is being written (a killed
    recorder's partial file has only that), True once it ends with everything counted."""
    return {"cbuf_recording": META_VERSION, "source": source,
            "schema_json": json.dumps(schema, separators=(",", ":")), "fingerprint": fingerprint,
            "row_size": row_size, "first_index": first, "rows": rows, "lost": lost,
            "lost_ranges": lost_ranges[:MAX_LISTED], "restarts": restarts[:MAX_LISTED], **extra}


def checked(meta, where: str):
    """(schema, columns, dtype) from recording metadata, or RecordingError naming `where`."""
    if not isinstance(meta, dict) or meta.get("cbuf_recording", 1) != META_VERSION:
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


def to_rows(stored: np.ndarray, dtype: np.dtype, columns: tuple, where, what: str) -> np.ndarray:
    """Rows of `dtype` from stored rows: the stored bytes as they are when the stored type is the row type
    (padding included), else column by column - each column's stored type must be the schema's exactly, so a
    value is never converted silently (1e300 into an int8, -1 into a uint64)."""
    if stored.dtype == dtype:
        return concat_rows([stored], dtype)
    names = stored.dtype.names or ()
    data = np.zeros(len(stored), dtype=dtype)
    for c in columns:
        if c.name not in names or stored.dtype[c.name] != dtype[c.name]:
            kind = stored.dtype[c.name] if c.name in names else "missing"
            raise bad(where, f"column {c.name!r} of {what} is {kind}, not the schema's {c.type}")
        data[c.name] = stored[c.name]
    return data


# --- what a writer is given -------------------------------------------------------------------------------
class Stream(NamedTuple):
    """One buffer being recorded: its name in the recording (the MCAP topic /cbuf/<name>, the HDF5 group /<name>
    when there are several), the metadata it starts with (make_meta), its row dtype and validated columns."""
    name: str
    meta: dict
    dtype: np.dtype
    columns: tuple


class Output:
    """The file a recording is written to: a hidden partial name beside `out` (`.run.h5.partial.h5`), renamed
    over `out` by commit() when the recording is complete. Until then the user's `out` is untouched; a recorder
    killed with kill -9 leaves the partial file (what each format keeps of it: docs/cli.md)."""

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


class Sink:
    """A partial file written through a library that must not see a write fail (HDF5 crashes at exit after
    one; foxglove-sdk's MCAP writer logs each later message's failure and panics at its end): the first error
    (a full disk) is kept here and the library goes on believing its writes succeed - positions included, as if
    the bytes had been written; the writer checks `error` after each call, reports it and removes the file.
    `written` counts the bytes written."""

    def __init__(self, path: Path):
        self.f = open(path, "w+b", buffering=0)
        self.error: Optional[BaseException] = None
        self.written = 0
        self.pos = self.end = 0  # where the library believes it is, and the end of what it believes it wrote

    def write(self, b) -> int:
        m = memoryview(b).cast("B")
        if self.error is None:
            at = 0
            try:
                while at < len(m):
                    at += self.f.write(m[at:])
            except (OSError, ValueError) as e:  # ValueError: written after close
                self.error = e
        self.written += len(m)
        self.pos += len(m)
        self.end = max(self.end, self.pos)
        return len(m)

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = (offset, self.pos + offset, self.end + offset)[whence]
        if self.error is None:
            try:
                self.f.seek(self.pos)
            except (OSError, ValueError) as e:
                self.error = e
        return self.pos

    def tell(self) -> int:
        return self.pos

    def truncate(self, size=None):
        size = self.pos if size is None else size
        if self.error is None:
            try:
                self.f.truncate(size)
            except (OSError, ValueError) as e:
                self.error = e
        self.end = size
        return size

    def flush(self) -> None:
        pass  # unbuffered: every write has reached the OS

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def __getattr__(self, name):  # read, readinto, close: the file's own
        return getattr(self.f, name)


# --- what a loader gives ----------------------------------------------------------------------------------
class Stored(NamedTuple):
    """One buffer's rows in a file, as a format's loader finds them: its name, its metadata, and a generator
    function yielding (rows, their indices or None) BATCH at a time, in recorded order."""
    name: str
    meta: dict
    batches: Callable[[], Iterator[tuple]]


class Recording(NamedTuple):
    meta: dict          # the metadata written by cbuf record (schema_json, fingerprint, row_size, ...)
    schema: dict        # the schema as the runtime parsed it
    columns: tuple      # validated columns (LayoutColumn)
    dtype: np.dtype     # the buffer's row dtype (itemsize = row_size, padding included)
    rows: int           # rows in the recording (counted by load()'s checking pass)
    indexed: Callable[[], Iterator[tuple]]  # (rows, indices) again, in recorded order, BATCH at a time
    first_index: Optional[int]  # indices are the recorded ones when first_index is not None, else None
    last_index: Optional[int]   # the last recorded index (with first_index)
    name: str = ""      # the buffer's name in the recording
    notes: tuple = ()   # what load found and replay reports (a missing segment of a split set)

    def batches(self) -> Iterator[np.ndarray]:
        """The rows again, in recorded order, BATCH at a time."""
        return (rows for rows, _ in self.indexed())

    @property
    def data(self) -> np.ndarray:
        """Every row in one array: for small recordings and tests (replay streams batches())."""
        return concat_rows(list(self.batches()), self.dtype)


def implied_indices(batches, meta: dict):
    """(rows, indices) batches: the indices the file stores per row, else, for the formats without them, the
    ones the metadata implies - from first_index, counting the lost ranges - when it is complete (one producer
    epoch, every lost range and restart listed: a CSV line with no room for them says "listed": false); else
    None."""
    first, ranges = meta.get("first_index"), meta.get("lost_ranges")
    complete = (meta.get("complete", True) is True and meta.get("listed", True) is True
                and isinstance(first, int) and 0 <= first < _core.INDEX_LIMIT
                and isinstance(ranges, list) and not meta.get("restarts")
                and all(isinstance(r, list) and len(r) == 2 and all(isinstance(x, int) for x in r) for r in ranges)
                and sum(b - a for a, b in ranges) == meta.get("lost"))

    def gen():
        at, gaps = first, sorted((a, b) for a, b in ranges) if complete else []
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


# --- writing ----------------------------------------------------------------------------------------------
class Tally:
    """What a writer has been given for one stream: the source of the recording's metadata."""

    def __init__(self, stream: Stream):
        self.stream = stream
        self.first: Optional[int] = None  # index of the first row recorded
        self.rows = 0
        self.lost_ranges: list = []
        self.lost = 0
        self.restarts: list = []
        self.epoch = stream.meta.get("epoch", 0)

    def meta(self, complete: bool) -> dict:
        m = self.stream.meta
        return make_meta(m["source"], json.loads(m["schema_json"]), m["fingerprint"], m["row_size"],
                         self.first if self.first is not None else 0, self.rows, self.lost, self.lost_ranges,
                         self.restarts, epoch=self.epoch, complete=complete,
                         **{k: v for k, v in m.items() if k in ("segment",)})


class Writer:
    """The base of every format's writer: append(k, first, rows) for stream k, lost(k, start, stop),
    restart(k, info, epoch), idle() while nothing comes, then finish() - or abort(). A format implements
    _open (in __init__), _append, _lost, _flush, _finish and _close; this class keeps the tallies every
    format's metadata is made of, flushes at least every FLUSH_SECONDS, and turns any failure into one
    RecordingError naming the user's file, after removing the partial file."""

    MULTI = True  # the format holds several buffers

    def __init__(self, out: Output, streams: list, options: dict):
        self.out, self.streams, self.options = out, streams, options
        self.tallies = [Tally(s) for s in streams]
        self.flushed = time.monotonic()
        self.closed = False
        try:
            self._open()
        except Exception as e:
            raise self._failed(e) from None

    # what a format implements
    def _open(self) -> None: ...
    def _append(self, k: int, first: int, rows: np.ndarray) -> None: ...
    def _lost(self, k: int, start: int, stop: int) -> None: ...
    def _flush(self) -> None: ...
    def _finish(self, metas: list) -> None: ...   # writes the metadata and closes the partial file
    def _close(self) -> None: ...                  # closes it quietly, whatever state it is in
    def size(self) -> int: return 0               # bytes written so far (for --split-size)

    def _reason(self, e: BaseException) -> BaseException:
        """The error to report for `e` (a format whose library hides write errors reports the first one)."""
        return e

    def _failed(self, e: BaseException) -> RecordingError:
        e = self._reason(e)
        if not self.closed:
            self.closed = True
            try:
                self._close()
            except Exception:
                pass
        return self.out.failed(e)

    def append(self, k: int, first: int, rows: np.ndarray) -> None:
        n = len(rows)
        if not n:
            return
        t = self.tallies[k]
        t.first = first if t.first is None else t.first
        t.rows += n
        try:
            self._append(k, first, rows)
            self._flush_if_due()
        except Exception as e:
            raise self._failed(e) from None

    def lost(self, k: int, start: int, stop: int) -> None:
        t = self.tallies[k]
        t.lost_ranges.append([start, stop])
        t.lost += stop - start
        try:
            self._lost(k, start, stop)
        except Exception as e:
            raise self._failed(e) from None

    def restart(self, k: int, info: dict, epoch: int) -> None:
        """The producer of stream k restarted (same schema): the indices start over."""
        t = self.tallies[k]
        t.restarts.append({**info, "at_row": t.rows})
        t.epoch = epoch

    def idle(self) -> None:
        try:
            self._flush_if_due()
        except Exception as e:
            raise self._failed(e) from None

    def _flush_if_due(self) -> None:
        if time.monotonic() - self.flushed >= FLUSH_SECONDS:
            self._flush()
            self.flushed = time.monotonic()

    def finish(self) -> list:
        """Completes the file and renames it into place; returns the metadata of each stream."""
        metas = [t.meta(complete=True) for t in self.tallies]
        try:
            self._finish(metas)
            self.closed = True
            self.out.commit()
        except Exception as e:
            raise self._failed(e) from None
        return metas

    def abort(self) -> None:
        self._failed(RuntimeError("aborted"))


class SinkWriter(Writer):
    """A writer whose library writes through a Sink (HDF5, MCAP) - `self.sink` - and keeps its own handle on it,
    `self.handle`: a failure reports the sink's first error, and closing closes the handle, then the sink."""

    def _reason(self, e: BaseException) -> BaseException:
        sink = getattr(self, "sink", None)
        return sink.error if sink is not None and sink.error else e

    def _close(self) -> None:
        """Closes the handle whatever state its library left it in (h5py's clean-up at exit crashes on a File
        left open after a failed write; foxglove-sdk's writer panics - a pyo3 PanicException, which is a
        BaseException - closing after one), then the sink."""
        for x in (getattr(self, "handle", None), getattr(self, "sink", None)):
            try:
                if x is not None:
                    x.close()
            except BaseException as e:
                if isinstance(e, (KeyboardInterrupt, SystemExit)):
                    raise

    def size(self) -> int:
        return self.sink.written
