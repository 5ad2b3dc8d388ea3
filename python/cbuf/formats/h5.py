"""HDF5 recordings (h5py): what `cbuf record -o run.h5` writes and `cbuf replay run.h5` reads.

Layout, readable by h5py, h5dump, HDFView or MATLAB without cbuf - for one buffer at the file's root, for several
in one group per buffer (`/imu`, `/gps`, named after the buffers):
  rows        the rows: one chunked, extendable dataset of the row's compound type (NumPy's structured dtype
              with its offsets and padding, so every row is byte for byte the buffer's); per column, the
              attributes `<column>.type`, `<column>.unit` and `<column>.doc`
  row_index   uint64, the buffer's index of each row (rows lost, or a producer restart, make it jump)
  lost        uint64 [n, 2], each range [first, end) of rows lost while recording
  attributes  `cbuf` (the recording's metadata as JSON: schema, fingerprint, source, ...), `schema_json`,
              `source`, `epoch`, `first_index`, `last_index`, `rows`, `lost`
The root of a file with several buffers has the attribute `cbuf_buffers`, their names as JSON.
The file is flushed every FLUSH_SECONDS, so a recorder killed with kill -9 leaves a partial file that opens,
holding the rows up to the last flush (rename it to use it); the attributes that sum up the recording are
written when it ends. (Not in HDF5's SWMR mode: a killed SWMR writer leaves a file that plain h5py.File(path)
and h5dump refuse until `h5clear -s` is run on it. The file keeps the default format version, which HDF5 1.8
and MATLAB read too.)
"""
import json
from pathlib import Path

import numpy as np

from ..errors import require as _require
from .common import BATCH, RecordingError, Sink, SinkWriter, Stored, bad, checked, json_loads, to_rows

SUFFIX = ".h5"
WHAT = "HDF5"
MAX_RATIO = 1000  # how many times its stored size a filtered (compressed) rows dataset may declare


def require():
    return _require("h5py", "hdf5", "HDF5 recordings")


class Writer(SinkWriter):
    def _open(self) -> None:
        h5py = require()
        self.sink = Sink(self.out.tmp)
        # superblock 0: no "open for write" flag
        self.f = self.handle = h5py.File(self.sink, "w", libver=("earliest", "v108"))
        several = len(self.streams) > 1
        if several:
            self.f.attrs["cbuf_buffers"] = json.dumps([s.name for s in self.streams])
        self.places = []
        for s, t in zip(self.streams, self.tallies):
            g = self.f.create_group(s.name) if several else self.f
            meta = t.meta(False)
            g.attrs["cbuf"] = json.dumps(meta)
            g.attrs["schema_json"] = meta["schema_json"]
            g.attrs["source"] = meta["source"]
            chunk = max(1, min(65536, (1 << 20) // s.dtype.itemsize))
            rows = g.create_dataset("rows", shape=(0,), maxshape=(None,), dtype=s.dtype, chunks=(chunk,))
            info = {x["name"]: x for x in json.loads(meta["schema_json"])["columns"]}
            for c in s.columns:
                col = info.get(c.name, {})
                rows.attrs[f"{c.name}.type"] = c.type
                rows.attrs[f"{c.name}.unit"] = col.get("unit", "")
                rows.attrs[f"{c.name}.doc"] = col.get("doc", "")
            index = g.create_dataset("row_index", shape=(0,), maxshape=(None,), dtype="<u8", chunks=(chunk,))
            lost = g.create_dataset("lost", shape=(0, 2), maxshape=(None, 2), dtype="<u8", chunks=(256, 2))
            self.places.append((g, rows, index, lost))
        self.f.flush()  # a file that opens, from the start
        self.sink.check()

    def _append(self, k: int, first: int, rows: np.ndarray) -> None:
        _, data, index, _ = self.places[k]
        n, at = len(rows), data.shape[0]
        data.resize((at + n,))
        data[at:] = rows  # the same compound type in memory and on disk: HDF5 copies the bytes, padding included
        index.resize((at + n,))
        index[at:] = np.arange(first, first + n, dtype=np.uint64)
        self.sink.check()

    def _lost(self, k: int, start: int, stop: int) -> None:
        lost = self.places[k][3]
        at = lost.shape[0]
        lost.resize((at + 1, 2))
        lost[at] = (start, stop)
        self.sink.check()

    def _flush(self) -> None:
        self.f.flush()
        self.sink.check()

    def _finish(self, metas: list) -> None:
        for (g, rows, index, _), meta, t in zip(self.places, metas, self.tallies):
            g.attrs["cbuf"] = json.dumps(meta)
            g.attrs["epoch"] = t.epoch
            g.attrs["first_index"] = meta["first_index"]
            g.attrs["last_index"] = int(index[-1]) if rows.shape[0] else -1
            g.attrs["rows"] = int(rows.shape[0])
            g.attrs["lost"] = meta["lost"]
        self.handle = None
        self.f.close()
        self.sink.check()
        self.sink.close()


    def size(self) -> int:
        """The rows and indices held (HDF5 keeps up to a chunk per dataset in its cache before writing it)."""
        return max(self.sink.written, sum(rows.shape[0] * (rows.dtype.itemsize + 8) for _, rows, _, _ in self.places))


def _stream(f, g, path: Path, where: str) -> Stored:
    h5py = require()
    meta = json_loads(g.attrs["cbuf"], path, f"the 'cbuf' attribute of {where}")
    _, columns, dtype = checked(meta, str(path))
    rows = g["rows"]
    if not isinstance(rows, h5py.Dataset) or rows.dtype.names is None or rows.ndim != 1:
        raise bad(path, f"{where}rows is not a 1-D dataset of rows")
    n = int(rows.shape[0])
    to_rows(np.zeros(0, dtype=rows.dtype), dtype, columns, path, f"{where}rows")  # the stored types, first
    stored, need = int(rows.id.get_storage_size()), n * rows.dtype.itemsize
    filtered = rows.id.get_create_plist().get_nfilters() > 0
    if (stored < need and not filtered) or (filtered and need > MAX_RATIO * max(stored, 1)):
        raise bad(path, f"{where}rows declares {n} rows ({need} bytes) but the file stores {stored} bytes of them")
    index = g.get("row_index")  # each row's index in the buffer, when it is what cbuf record wrote
    indexed = isinstance(index, h5py.Dataset) and index.shape == (n,) and index.dtype.kind in "iu"
    name = g.name.strip("/") or Path(str(meta.get("source", ""))).name

    def batches():
        """(rows, their indices or None), BATCH at a time."""
        with h5py.File(path, "r") as f:
            g = f[where]
            for at in range(0, n, BATCH):
                try:
                    raw = g["rows"][at:at + BATCH]
                    idx = g["row_index"][at:at + BATCH] if indexed else None
                except (OSError, RuntimeError, ValueError) as e:
                    raise bad(path, f"rows from {at} cannot be read ({e})") from None
                yield to_rows(raw, dtype, columns, path, f"{where}rows"), idx
    return Stored(name, meta, batches)


def load(path: Path) -> list:
    """The buffers of an HDF5 recording, each checked: the size its rows dataset declares is checked against the
    storage the file holds for it, so a small file cannot ask for gigabytes of fill values."""
    h5py = require()
    try:
        f = h5py.File(path, "r")
    except (OSError, RuntimeError) as e:
        raise bad(path, f"not a readable HDF5 file ({e})") from None
    with f:
        if "cbuf" in f.attrs and "rows" in f:
            return [_stream(f, f, path, "/")]
        if "cbuf_buffers" not in f.attrs:
            raise RecordingError(f"{path}: not a cbuf recording (no 'cbuf' attribute or no /rows dataset)")
        names = json_loads(f.attrs["cbuf_buffers"], path, "its 'cbuf_buffers' attribute")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n in f for n in names):
            raise bad(path, "its 'cbuf_buffers' attribute does not name its groups")
        out = []
        for n in names:
            g = f[n]
            if not isinstance(g, h5py.Group) or "cbuf" not in g.attrs or "rows" not in g:
                raise bad(path, f"group /{n} is not a recorded buffer (no 'cbuf' attribute or no rows)")
            out.append(_stream(f, g, path, f"/{n}/"))
        return out
