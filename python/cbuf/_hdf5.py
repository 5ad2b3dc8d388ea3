"""HDF5 recordings (h5py): what `cbuf record -o run.h5` writes and `cbuf replay run.h5` reads.

Layout, readable by h5py, h5dump, HDFView or MATLAB without cbuf:
  /rows        the rows: one chunked, extendable dataset of the row's compound type (NumPy's structured dtype
               with its offsets and padding, so every row is byte for byte the buffer's); per column, the
               attributes `<column>.type`, `<column>.unit` and `<column>.doc`
  /row_index   uint64, the buffer's index of each row (rows lost, or a producer restart, make it jump)
  /lost        uint64 [n, 2], each range [first, end) of rows lost while recording
  attributes   `cbuf` (the recording's metadata as JSON: schema, fingerprint, source, ...), `schema_json`,
               `source`, `epoch`, `first_index`, `last_index`, `rows`, `lost`
The file is written under the recording's partial name (recording.Output: `.run.h5.partial.h5` beside
`run.h5`) and renamed into place when the recording ends, so an existing `run.h5` is never touched before
the new one is complete, and a full disk leaves nothing. It is flushed every `FLUSH_SECONDS`, so a recorder
that is killed leaves a partial file that opens, holding the rows up to the last flush (rename it to use
it); the attributes that sum up the recording are written when it ends. (Not in HDF5's SWMR mode: a killed
SWMR writer leaves a file that plain h5py.File(path) and h5dump refuse until `h5clear -s` is run on it. The
file keeps the default format version, which HDF5 1.8 and MATLAB read too.)
"""
import json
import time
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import require

FLUSH_SECONDS = 0.5


def require_packages():
    return require("h5py", "hdf5", "HDF5 recordings")


class _Sink:
    """The partial file as HDF5 writes it (h5py's file-object driver, unbuffered: a flush reaches the OS). The
    first write error (a full disk) is kept here instead of being handed to HDF5: HDF5 left with a failed write
    crashes the process when it cleans up at exit (SIGSEGV), while here it goes on believing its writes
    succeed, and the Writer, which checks `error` after each call, reports it and removes the file."""

    def __init__(self, path: Path):
        self.f = open(path, "w+b", buffering=0)
        self.error: Optional[OSError] = None

    def write(self, b) -> int:
        if self.error is None:
            m, at = memoryview(b).cast("B"), 0
            try:
                while at < len(m):
                    at += self.f.write(m[at:])
            except OSError as e:
                self.error = e
        return len(b)

    def truncate(self, size=None):
        if self.error is None:
            try:
                return self.f.truncate(size)
            except OSError as e:
                self.error = e
        return size

    def __getattr__(self, name):  # read, readinto, seek, tell, flush, close: the file's own
        return getattr(self.f, name)


class Writer:
    """Streams rows into the partial file of `out` (recording.Output) as they are read."""

    def __init__(self, out, meta: dict, dtype: np.dtype, columns: tuple):
        h5py = require_packages()
        self.out, self.f, self.sink = out, None, None
        try:
            self.sink = _Sink(out.tmp)
            self.f = h5py.File(self.sink, "w", libver=("earliest", "v108"))  # superblock 0: no "open for write" flag
            self.f.attrs["cbuf"] = json.dumps(meta)
            self.f.attrs["schema_json"] = meta["schema_json"]
            self.f.attrs["source"] = meta["source"]
            chunk = max(1, min(65536, (1 << 20) // dtype.itemsize))
            self.rows = self.f.create_dataset("rows", shape=(0,), maxshape=(None,), dtype=dtype, chunks=(chunk,))
            info = {x["name"]: x for x in json.loads(meta["schema_json"])["columns"]}
            for c in columns:
                col = info.get(c.name, {})
                self.rows.attrs[f"{c.name}.type"] = c.type
                self.rows.attrs[f"{c.name}.unit"] = col.get("unit", "")
                self.rows.attrs[f"{c.name}.doc"] = col.get("doc", "")
            self.index = self.f.create_dataset("row_index", shape=(0,), maxshape=(None,), dtype="<u8",
                                               chunks=(chunk,))
            self.lost_ranges = self.f.create_dataset("lost", shape=(0, 2), maxshape=(None, 2), dtype="<u8",
                                                     chunks=(256, 2))
            self.f.flush()  # a file that opens, from the start
            self._check()
        except Exception as e:  # OSError
            raise self._failed(e) from None
        self.flushed = time.monotonic()

    def _check(self) -> None:
        if self.sink.error is not None:
            raise self.sink.error

    def _failed(self, e: BaseException):
        """Closes the file whatever state HDF5 left it in, then removes it: the error names the user's file.
        (A File object left open after a failed write crashes h5py's own clean-up at exit.)"""
        f, self.f = self.f, None
        for x in (f, self.sink):
            try:
                if x is not None:
                    x.close()
            except Exception:
                pass
        return self.out.failed(self.sink.error if self.sink is not None and self.sink.error else e)

    def append(self, first: int, rows: np.ndarray) -> None:
        try:
            n, at = len(rows), self.rows.shape[0]
            self.rows.resize((at + n,))
            self.rows[at:] = rows
            self.index.resize((at + n,))
            self.index[at:] = np.arange(first, first + n, dtype=np.uint64)
            self._maybe_flush()
            self._check()
        except Exception as e:
            raise self._failed(e) from None

    def lost(self, start: int, stop: int) -> None:
        try:
            at = self.lost_ranges.shape[0]
            self.lost_ranges.resize((at + 1, 2))
            self.lost_ranges[at] = (start, stop)
            self._maybe_flush()
            self._check()
        except Exception as e:
            raise self._failed(e) from None

    def idle(self) -> None:
        """Called while no rows come: what was appended reaches the file within FLUSH_SECONDS anyway."""
        try:
            self._maybe_flush()
            self._check()
        except Exception as e:
            raise self._failed(e) from None

    def _maybe_flush(self) -> None:
        if time.monotonic() - self.flushed >= FLUSH_SECONDS:
            self.f.flush()
            self.flushed = time.monotonic()

    def finish(self, meta: dict, epoch: int) -> None:
        """Writes the attributes that sum the recording up, closes the file and renames it into place."""
        try:
            rows = int(self.rows.shape[0])
            attrs = self.f.attrs
            attrs["cbuf"] = json.dumps(meta)
            attrs["epoch"] = epoch
            attrs["first_index"] = meta["first_index"]
            attrs["last_index"] = int(self.index[-1]) if rows else -1
            attrs["rows"] = rows
            attrs["lost"] = meta["lost"]
            self.f.close()
            self.f = None
            self._check()
            self.sink.close()
            self.out.commit()
        except Exception as e:
            raise self._failed(e) from None

    def abort(self) -> None:
        self._failed(RuntimeError("aborted"))


MAX_RATIO = 1000  # how many times its stored size a filtered (compressed) /rows may declare


def open_rows(path: Path, checked, to_rows):
    """(meta, batches) of an HDF5 recording: checked(meta, where) -> (schema, columns, dtype) checks the
    metadata; to_rows(raw, dtype, columns, where, what) converts stored rows, refusing other types. The size
    /rows declares is checked against the storage the file holds for it, so a small file cannot ask for
    gigabytes of fill values."""
    h5py = require_packages()
    from ._recfile import BATCH, RecordingError, bad, json_loads
    try:
        f = h5py.File(path, "r")
    except (OSError, RuntimeError) as e:
        raise bad(path, f"not a readable HDF5 file ({e})") from None
    with f:
        if "cbuf" not in f.attrs or "rows" not in f:
            raise RecordingError(f"{path}: not a cbuf recording (no 'cbuf' attribute or no /rows dataset)")
        meta = json_loads(f.attrs["cbuf"], path, "its 'cbuf' attribute")
        _, columns, dtype = checked(meta, str(path))
        rows = f["rows"]
        if not isinstance(rows, h5py.Dataset) or rows.dtype.names is None or rows.ndim != 1:
            raise bad(path, "/rows is not a 1-D dataset of rows")
        n = int(rows.shape[0])
        to_rows(np.zeros(0, dtype=rows.dtype), dtype, columns, path, "/rows")  # the stored types, before any row
        stored, need = int(rows.id.get_storage_size()), n * rows.dtype.itemsize
        filtered = rows.id.get_create_plist().get_nfilters() > 0
        if (stored < need and not filtered) or (filtered and need > MAX_RATIO * max(stored, 1)):
            raise bad(path, f"/rows declares {n} rows ({need} bytes) but the file stores {stored} bytes of them")
        index = f.get("row_index")  # each row's index in the buffer, when it is what cbuf record wrote
        indexed = isinstance(index, h5py.Dataset) and index.shape == (n,) and index.dtype.kind in "iu"

    def batches():
        """(rows, their indices or None), BATCH at a time."""
        with h5py.File(path, "r") as f:
            rows = f["rows"]
            for at in range(0, n, BATCH):
                try:
                    raw = rows[at:at + BATCH]
                    idx = f["row_index"][at:at + BATCH] if indexed else None
                except (OSError, RuntimeError, ValueError) as e:
                    raise bad(path, f"rows from {at} cannot be read ({e})") from None
                yield to_rows(raw, dtype, columns, path, "/rows"), idx
    return meta, batches

