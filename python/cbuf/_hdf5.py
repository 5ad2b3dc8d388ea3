"""HDF5 recordings (h5py): what `cbuf record -o run.h5` writes and `cbuf replay run.h5` reads.

Layout, readable by h5py, h5dump, HDFView or MATLAB without cbuf:
  /rows        the rows: one chunked, extendable dataset of the row's compound type (NumPy's structured dtype
               with its offsets and padding, so every row is byte for byte the buffer's); per column, the
               attributes `<column>.type`, `<column>.unit` and `<column>.doc`
  /row_index   uint64, the buffer's index of each row (rows lost, or a producer restart, make it jump)
  /lost        uint64 [n, 2], each range [first, end) of rows lost while recording
  attributes   `cbuf` (the recording's metadata as JSON: schema, fingerprint, source, ...), `schema_json`,
               `source`, `epoch`, `first_index`, `last_index`, `rows`, `lost`
The file is flushed every `FLUSH_SECONDS`, so a recorder that is killed leaves a file that opens, holding
the rows up to the last flush; the attributes that sum up the recording are written when it ends. (Not in
HDF5's SWMR mode: a killed SWMR writer leaves a file that plain h5py.File(path) and h5dump refuse until
`h5clear -s` is run on it. The file keeps the default format version, which HDF5 1.8 and MATLAB read too.)
"""
import json
import time
from pathlib import Path

import numpy as np

from .errors import require

FLUSH_SECONDS = 0.5


def _require():
    return require("h5py", "hdf5", "HDF5 recordings")


class Writer:
    """Streams rows into `out` as they are read."""

    def __init__(self, out: Path, meta: dict, dtype: np.dtype, columns: tuple):
        h5py = _require()
        self.f = h5py.File(out, "w", libver=("earliest", "v108"))  # superblock 0: no "open for write" flag
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
        self.index = self.f.create_dataset("row_index", shape=(0,), maxshape=(None,), dtype="<u8", chunks=(chunk,))
        self.lost_ranges = self.f.create_dataset("lost", shape=(0, 2), maxshape=(None, 2), dtype="<u8",
                                                 chunks=(256, 2))
        self.f.flush()  # a file that opens, from the start
        self.flushed = time.monotonic()

    def append(self, first: int, rows: np.ndarray) -> None:
        n, at = len(rows), self.rows.shape[0]
        self.rows.resize((at + n,))
        self.rows[at:] = rows
        self.index.resize((at + n,))
        self.index[at:] = np.arange(first, first + n, dtype=np.uint64)
        self._maybe_flush()

    def lost(self, start: int, stop: int) -> None:
        at = self.lost_ranges.shape[0]
        self.lost_ranges.resize((at + 1, 2))
        self.lost_ranges[at] = (start, stop)
        self._maybe_flush()

    def idle(self) -> None:
        """Called while no rows come: what was appended reaches the file within FLUSH_SECONDS anyway."""
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if time.monotonic() - self.flushed >= FLUSH_SECONDS:
            self.f.flush()
            self.flushed = time.monotonic()

    def finish(self, meta: dict, epoch: int) -> None:
        """Closes the streaming file, then writes the attributes that sum the recording up."""
        path = self.f.filename
        rows = int(self.rows.shape[0])
        last = int(self.index[-1]) if rows else None
        self.f.close()
        h5py = _require()
        with h5py.File(path, "r+") as f:
            f.attrs["cbuf"] = json.dumps(meta)
            f.attrs["epoch"] = epoch
            f.attrs["first_index"] = meta["first_index"]
            f.attrs["last_index"] = -1 if last is None else last
            f.attrs["rows"] = rows
            f.attrs["lost"] = meta["lost"]

    def abort(self) -> None:
        self.f.close()


def load(path: Path):
    """(meta, raw rows) of an HDF5 recording; the caller checks the metadata and converts the rows."""
    h5py = _require()
    from .recording import RecordingError, bad
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise bad(path, f"not a readable HDF5 file ({e})") from None
    with f:
        if "cbuf" not in f.attrs or "rows" not in f:
            raise RecordingError(f"{path}: not a cbuf recording (no 'cbuf' attribute or no /rows dataset)")
        try:
            meta = json.loads(f.attrs["cbuf"])
        except (TypeError, ValueError) as e:
            raise bad(path, f"its 'cbuf' attribute is not valid JSON ({e})") from None
        rows = f["rows"]
        if rows.dtype.names is None or rows.ndim != 1:
            raise bad(path, "/rows is not a 1-D dataset of rows")
        return meta, rows[()]
