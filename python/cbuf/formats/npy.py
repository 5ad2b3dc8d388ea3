"""`.npy` recordings: the rows as one NumPy array (`numpy.load` reads it), the metadata in a `.cbuf.json` file
beside it.

Streamed: the header is written first with room for any row count, the rows' bytes follow as they come (exactly
the buffer's, padding included), and the header's row count is brought up to date at every flush and at the
end. A recorder killed with kill -9 leaves the partial file (`.run.npy.partial.npy`, with its
`.run.npy.cbuf.json.partial.json`) holding the rows up to the last flush, which `numpy.load` and `cbuf replay`
read once renamed; bytes after those rows (a row cut in half) are ignored.
"""
import json
import zipfile
from pathlib import Path

import numpy as np

from .common import BATCH, Output, RecordingError, Stored, Writer as _Writer, bad, checked, json_loads, raw, \
    to_rows

SUFFIX = ".npy"
WHAT = ".npy (NumPy)"
_MAGIC = b"\x93NUMPY"
_MAX_HEADER = 1 << 20  # bytes of .npy header a loader reads (thousands of columns): numpy.load's default is 10000


def require() -> None:
    pass


def _header(dtype: np.dtype, rows: int, size: int = 0) -> bytes:
    """A .npy header for `rows` rows of `dtype`, padded with spaces to `size` bytes (0: the size any row count
    fits in), version 1.0 where its length fits 16 bits, else 2.0. As NumPy's format: a dict literal ending in
    a newline, the whole header a multiple of 64 bytes."""
    text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (rows,)})
    if not size:
        width = len(repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                          "shape": (2**64,)}))
        need = len(_MAGIC) + 2 + 2 + width + 1
        size = (need + (2 if need - 10 > 0xFFFF else 0) + 63) // 64 * 64
    v2 = size - len(_MAGIC) - 4 > 0xFFFF
    prefix = _MAGIC + (bytes([2, 0]) if v2 else bytes([1, 0]))
    room = size - len(prefix) - (4 if v2 else 2)
    body = text.encode("latin1").ljust(room - 1) + b"\n"
    return prefix + room.to_bytes(4 if v2 else 2, "little") + body


class Writer(_Writer):
    MULTI = False

    def _open(self) -> None:
        s = self.streams[0]
        self.dtype = s.dtype
        self.side = Output(Path(str(self.out.out) + ".cbuf.json"))
        self.f = open(self.out.tmp, "w+b")
        self.header_size = len(_header(s.dtype, 0))
        self.f.write(_header(s.dtype, 0))
        self.count = 0
        self._write_side(complete=False)

    def _write_side(self, complete: bool) -> None:
        self.side.tmp.write_text(json.dumps(self.tallies[0].meta(complete), indent=1) + "\n")

    def _append(self, k: int, first: int, rows: np.ndarray) -> None:
        self.f.write(raw(rows))
        self.count += len(rows)

    def _update_header(self) -> None:
        """The header's row count brought up to the rows written."""
        self.f.flush()
        self.f.seek(0)
        self.f.write(_header(self.dtype, self.count, self.header_size))
        self.f.seek(0, 2)
        self.f.flush()

    def _flush(self) -> None:
        self._update_header()
        self._write_side(complete=False)  # after the header: it never counts rows the header does not

    def _finish(self, metas: list) -> None:
        self._update_header()
        self.f.close()
        self.side.tmp.write_text(json.dumps(metas[0], indent=1) + "\n")
        self.side.commit()

    def _close(self) -> None:
        self.f.close()
        self.side.discard()

    def size(self) -> int:
        return self.header_size + self.count * self.dtype.itemsize


def load(path: Path) -> list:
    side = Path(str(path) + ".cbuf.json")
    if not side.exists():
        raise RecordingError(f"{path}: its schema file {side.name} is missing; record with cbuf record")
    meta = json_loads(side.read_bytes(), side, "it")
    _, columns, dtype = checked(meta, str(side))
    try:  # mapped, not read: the file's size is checked against its header and rows are read as needed
        stored = np.load(path, mmap_mode="r", allow_pickle=False, max_header_size=_MAX_HEADER)
    except (ValueError, EOFError, OSError, zipfile.BadZipFile, SyntaxError) as e:
        raise bad(path, f"not a readable .npy array ({e})") from None
    if not isinstance(stored, np.ndarray) or stored.dtype.names is None or stored.ndim != 1:
        raise bad(path, f"holds a plain {stored.dtype} array, not rows of the schema in {side.name}")

    def batches():
        for at in range(0, len(stored), BATCH):
            yield to_rows(stored[at:at + BATCH], dtype, columns, path, side.name)
    return [Stored(Path(str(meta.get("source", ""))).name, meta, batches)]


