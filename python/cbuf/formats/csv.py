"""`.csv` recordings: a `# cbuf {metadata}` line, a header line naming the flat columns (an array column is
name[0], name[1], ...), then one line per row. Values are exact text: integers in decimal, floats as the shortest
text that reads back to the same value (written by pyarrow's CSV writer where pyarrow is installed, else by
Python's repr: line_bytes), bools as 0/1, strings as UTF-8 text (bytes that are not UTF-8 as they are), quoted
where CSV needs it.

Streamed: lines are written a batch at a time. The metadata line is written first, padded with spaces to leave
room, and brought up to date at every flush and at the end (`"complete": false` until then, with the rows
flushed so far). A recorder killed with kill -9 leaves the partial file (`.run.csv.partial.csv`); `cbuf replay`
reads its first `rows` rows, those the metadata line counted, and ignores what follows (a line cut in half).
Pandas reads a recording with `pandas.read_csv(path, skiprows=1)`.
"""
import csv as _csv
import json
from pathlib import Path

import numpy as np

from .._dtype import element, flat_columns
from .common import BATCH, RecordingError, Stored, Writer as _Writer, arrow_arrays, bad, checked, json_loads

SUFFIX = ".csv"
WHAT = ".csv"
_PREFIX = b"# cbuf "
_ROOM = 16 << 10  # bytes kept free in the metadata line for what the recording adds (lost ranges, restarts)
_NEWLINE = "\r\n"  # RFC 4180, as Python's csv module writes


def require() -> None:
    pass


def _quoted(s: str) -> str:
    return '"' + s.replace('"', '""') + '"' if (not s or any(ch in s for ch in ',"\r\n') or s != s.strip()) else s


def _texts(values: np.ndarray, numpy_format: str):
    """One flat column of a batch as CSV cells."""
    if numpy_format.startswith("S"):
        return [_quoted(b.decode("utf-8", "surrogateescape")) for b in values.tolist()]
    if values.dtype.kind == "b":
        return ["1" if v else "0" for v in values.tolist()]
    if values.dtype.kind == "f":
        return list(map(repr, values.astype(np.float64).tolist()))
    return list(map(str, values.tolist()))


def _python_lines(rows: np.ndarray, columns: tuple, first, newline: str) -> bytes:
    cells = [_texts(element(rows, c, j), c.numpy) for c, j in flat_columns(columns).values()]
    if first is not None:
        cells.insert(0, list(map(str, range(first, first + len(rows)))))
    return "".join(",".join(r) + newline for r in zip(*cells)).encode("utf-8", "surrogateescape")


def _arrow_lines(rows: np.ndarray, columns: tuple, first, newline: str):
    """The lines through pyarrow's CSV writer (five times Python's speed), or None where it cannot write them
    exactly: no pyarrow, or a string that is not UTF-8."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pcsv
    except ImportError:
        return None
    arrays = [] if first is None else [pa.array(np.arange(first, first + len(rows), dtype=np.uint64))]
    try:
        for a in arrow_arrays(rows, columns).values():
            if pa.types.is_binary(a.type):
                a = a.cast(pa.string())  # checks the UTF-8
            elif pa.types.is_boolean(a.type):
                a = a.cast(pa.uint8())  # 0/1, not true/false
            arrays.append(a)
    except pa.ArrowInvalid:
        return None
    out = pa.BufferOutputStream()
    pcsv.write_csv(pa.Table.from_arrays(arrays, names=[str(i) for i in range(len(arrays))]), out,
                   pcsv.WriteOptions(include_header=False, quoting_style="needed", eol=newline,
                                     batch_size=max(len(rows), 1)))
    return out.getvalue().to_pybytes()


def line_bytes(rows: np.ndarray, columns: tuple, first=None, newline: str = _NEWLINE) -> bytes:
    """The CSV lines of a batch of rows, encoded - the one rule for CSV cells (recordings, `cbuf tail --csv`);
    with `first`, each line starts with the row's index. Values are exact either way: pyarrow's writer where it
    is installed (floats as the shortest text of their own type: `0.1` for a float32 0.1, `0` for 0.0), else
    Python's (floats as repr of the float64: `0.10000000149011612`, `0.0`), which also writes a batch holding
    a string that is not UTF-8 (its bytes as they are)."""
    if not len(rows):
        return b""
    data = _arrow_lines(rows, columns, first, newline)
    return data if data is not None else _python_lines(rows, columns, first, newline)


def lines(rows: np.ndarray, columns: tuple, first=None, newline: str = _NEWLINE) -> str:
    """line_bytes() as text."""
    return line_bytes(rows, columns, first, newline).decode("utf-8", "surrogateescape")


class Writer(_Writer):
    MULTI = False

    def _open(self) -> None:
        s = self.streams[0]
        self.f = open(self.out.tmp, "w+b")
        meta = self.tallies[0].meta(False)
        self.width = len(self._meta_line(meta)) + _ROOM
        self.f.write(self._meta_line(meta, self.width))
        self.f.write((",".join(flat_columns(s.columns)) + _NEWLINE).encode())
        self.written = self.f.tell()

    @staticmethod
    def _meta_line(meta: dict, width: int = 0) -> bytes:
        text = _PREFIX + json.dumps(meta, separators=(",", ":")).encode()
        return text.ljust(width - 1) + b"\n" if width else text + b"\n"

    def _fitting(self, meta: dict) -> bytes:
        """The metadata line, within the room kept: the listed lost ranges and restarts are dropped if they do
        not fit (`"listed": false`; the totals stay exact and replay renumbers the rows)."""
        line = self._meta_line(meta, self.width)
        if len(line) > self.width:
            line = self._meta_line({**meta, "lost_ranges": [], "restarts": [], "listed": False}, self.width)
        return line

    def _append(self, k: int, first: int, rows: np.ndarray) -> None:
        data = line_bytes(rows, self.streams[0].columns)
        self.f.write(data)
        self.written += len(data)

    def _rewrite_meta(self, meta: dict) -> None:
        """The metadata line brought up to date, after everything written so far reached the file."""
        self.f.flush()
        self.f.seek(0)
        self.f.write(self._fitting(meta))
        self.f.seek(0, 2)
        self.f.flush()

    def _flush(self) -> None:
        self._rewrite_meta(self.tallies[0].meta(complete=False))

    def _finish(self, metas: list) -> None:
        self._rewrite_meta(metas[0])
        self.f.close()

    def _close(self) -> None:
        self.f.close()

    def size(self) -> int:
        return self.written


def load(path: Path) -> list:
    with _open_text(path) as f:
        first = f.readline(1 << 20)
    if not first.startswith(_PREFIX.decode()):
        raise RecordingError(f"{path}: not a cbuf recording (no '# cbuf' header line)")
    meta = json_loads(first[len(_PREFIX):], path, "its '# cbuf' header line")
    _, columns, dtype = checked(meta, str(path))
    targets = flat_columns(columns)
    # A partial file (a recorder killed): the rows its metadata counted, not a line cut in half after them.
    limit = meta.get("rows") if meta.get("complete", True) is False and isinstance(meta.get("rows"), int) else None

    def convert(lines_: list, header: list, line0: int) -> np.ndarray:
        data = np.zeros(len(lines_), dtype=dtype)
        for i, row in enumerate(lines_):
            if len(row) != len(header):
                raise bad(path, f"line {line0 + i} has {len(row)} values, the header {len(header)} (truncated?)")
        for k, name in enumerate(header):
            c, j = targets[name]
            target = element(data, c, j)
            try:
                if c.numpy.startswith("S"):
                    target[:] = [row[k].encode("utf-8", "surrogateescape") for row in lines_]
                else:
                    conv = float if target.dtype.kind == "f" else int
                    target[:] = [conv(row[k]) for row in lines_]
            except (ValueError, OverflowError):
                i = next(i for i, row in enumerate(lines_) if not _parses(row[k], target.dtype))
                raise bad(path, f"line {line0 + i}, column {name!r}: {lines_[i][k]!r} is not a {c.type} value") \
                    from None
        return data

    def batches():
        with _open_text(path) as f:
            f.readline(1 << 20)
            reader = _csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise bad(path, "it has no column header line")
            for name in header:
                if name not in targets:
                    raise bad(path, f"column {name!r} is not in the recording's schema")
            missing = [n for n in targets if n not in header]
            if missing:
                raise bad(path, f"column {missing[0]!r} of the schema is missing")
            line, got, pending = 3, 0, []
            for row in reader:
                if limit is not None and got + len(pending) >= limit:
                    break
                pending.append(row)
                if len(pending) == BATCH:
                    yield convert(pending, header, line)
                    line, got, pending = line + BATCH, got + BATCH, []
            if pending:
                yield convert(pending, header, line)
    return [Stored(Path(str(meta.get("source", ""))).name, meta, batches)]


def _open_text(path: Path):
    return path.open(newline="", errors="surrogateescape")


def _parses(text: str, dtype: np.dtype) -> bool:
    try:
        np.array([float(text) if dtype.kind == "f" else int(text)], dtype=dtype)
        return True
    except (ValueError, OverflowError):
        return False


