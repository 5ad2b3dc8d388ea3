"""The generic reader: needs only a path or name; the row dtype comes from the schema embedded in the file.

Every row it returns is a validated copy (the seqlock protocol of docs/format.md, run in C++; copies of 64 KiB or
more release the GIL). `view()` is the one exception: a zero-copy, read-only, *unvalidated* view for experts.
"""
import json
import operator
import os
from typing import Iterator, NamedTuple, Optional, Union

import numpy as np

from . import _core
from ._enums import choice
from ._dtype import LayoutColumn, dtype_from_columns, flat_values
from ._search import did_you_mean
from .errors import NotFoundError, SchemaMismatchError

__all__ = ["Reader", "ReadResult", "Restart", "open"]


class Restart(NamedTuple):
    """A following reader moved to a new producer of its buffer (a new epoch). Every row of the old epoch below
    `old_end` was received or reported lost; the new epoch's rows start at `new_start`. `schema_changed`: the
    new buffer holds another schema (the reader's `schema`, `dtype` and `columns` are the new ones now)."""
    old_epoch: int
    new_epoch: int
    old_end: int
    new_start: int
    schema_changed: bool


class ReadResult(NamedTuple):
    """`rows` hold indices [first, first + len(rows)); `lost` rows, indices `lost_range`, were overwritten
    before this reader got to them and come right before `first`. `restart` is set (and `rows` empty) on the
    result that moved a following reader to a new epoch."""
    rows: np.ndarray
    first: int
    lost: int
    lost_range: range
    restart: Optional[Restart] = None


_new_tuple = tuple.__new__  # ReadResult without NamedTuple.__new__'s keyword handling, on the polling path


def _path_arg(value, what: str) -> str:
    """A name or path as the runtime takes it: str or os.PathLike (bytes are decoded as the OS does)."""
    if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__"):
        text = os.fsdecode(value)
        if "\0" in text:
            raise ValueError(f"{what} contains a NUL character: {text!r}")
        return text
    raise TypeError(f"{what} must be a buffer name or path (str or os.PathLike), not {type(value).__name__}")


def _index(value, what: str) -> int:
    """A row index: an integer in 0..2**64-1."""
    try:
        i = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer row index, not {type(value).__name__}") from None
    if not 0 <= i < 2**64:
        raise ValueError(f"{what} must be a row index in 0..2**64-1, not {i}")
    return i


def _count(value, what: str) -> int:
    """A number of rows: an integer >= 0."""
    try:
        n = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer number of rows, not {type(value).__name__}") from None
    if n < 0:
        raise ValueError(f"{what} must be >= 0, not {n}")
    return n


class Reader:
    """Attach to a cbuf buffer by name (in $CBUF_DIR or /dev/shm) or by path.

    start: "oldest" (default), "newest", "end" (only rows written from now on) or a row index.
    attach_timeout: seconds to wait for the buffer to appear and be published (a reader may start before its
    producer). follow: move to each new producer of the name (a restart) - see Restart. live: attach only to a
    buffer whose producer is live - a closed or dead one left by an earlier run is passed over, and attaching
    waits (within attach_timeout) for its replacement; else NotLiveError.
    expect_fingerprint / expect_name / expect_columns: refuse a buffer of another schema (typed readers).
    pace: seconds a reader that keeps finding new rows the moment it catches up leaves the ring alone before it
    reads again, so that it does not slow the producer (None: the runtime's default, 5 us; 0: never) - see
    docs/tuning.md, "Many readers".
    """

    def __init__(self, name_or_path: Union[str, "os.PathLike[str]"], *, dir: str = "",
                 start: Union[str, int] = "oldest", attach_timeout: float = 1.0, follow: bool = False,
                 expect_fingerprint: Optional[int] = None, expect_name: Optional[str] = None,
                 expect_columns: Optional[list] = None, pace: Optional[float] = None, live: bool = False):
        if isinstance(start, str):
            start, start_index = choice(_core.Start, start, "start", " or a row index", internal=("index",)), 0
        elif isinstance(start, bool) or not isinstance(start, int):
            raise TypeError(f"start must be 'oldest', 'newest', 'end' or a row index, not {type(start).__name__}")
        else:
            start, start_index = _core.Start.index, _index(start, "start index")
        # Runtime errors arrive as cbuf.Error subclasses (the binding raises them: cbuf.errors).
        try:
            self._b = _core.Buffer(_path_arg(name_or_path, "name_or_path"), _path_arg(dir, "dir"), start, start_index,
                                   attach_timeout, bool(follow), pace, bool(live))
        except NotFoundError as e:  # a name a letter off: say which buffers are there (as the cbuf command does)
            hint = did_you_mean(os.fspath(name_or_path), dir) if "/" not in os.fspath(name_or_path) else ""
            if not hint:
                raise
            raise NotFoundError(f"{e}{hint}", e.code, e.path) from None
        self.path: str = self._b.path
        self.follow: bool = bool(follow)
        self._expect = (expect_fingerprint, expect_name, expect_columns)
        self._load_schema("")

    def _load_schema(self, when: str) -> None:
        """Takes the schema, columns and geometry from the runtime (at attach, and after following a restart)."""
        # The schema and its columns as the runtime parsed and checked them (one validation for every reader).
        self.schema: dict = json.loads(self._b.schema_checked)
        self.schema_json: str = self._b.schema_json  # the schema JSON as the file embeds it (what a copy needs)
        self.base_index: int = self._b.base_index  # the index of the producer's first row
        self.schema_name: str = self.schema.get("name", "") if isinstance(self.schema.get("name"), str) else ""
        self.fingerprint: int = self._b.fingerprint
        self.capacity: int = self._b.capacity
        self.row_size: int = self._b.row_size
        self.columns: tuple = tuple(LayoutColumn(*c) for c in self._b.columns)
        expect_fingerprint, expect_name, expect_columns = self._expect
        if expect_fingerprint is not None and expect_fingerprint != self.fingerprint:
            changes = _core.column_changes(expect_columns, self._b.columns) if expect_columns else ""
            raise SchemaMismatchError(
                f"cbuf: {self.path}: {when}holds schema {self.schema_name!r} (fingerprint 0x{self.fingerprint:016x})"
                f" but this reader was generated for {expect_name!r} (fingerprint 0x{expect_fingerprint:016x})"
                f"{': ' + changes if changes else ''}; open the right buffer or regenerate the reader",
                "schema_mismatch", self.path)
        self.dtype: np.dtype = dtype_from_columns(self.columns, self.row_size)
        self._checked_out: Optional[np.ndarray] = None  # the last out= array read_new() checked
        self._empty_result: Optional[ReadResult] = None  # the last empty read_new() answer

    # --- state -------------------------------------------------------------------------------------------
    @property
    def head(self) -> int:
        """Rows committed so far (the index the next row gets)."""
        return self._b.head()

    @property
    def cursor(self) -> int:
        """Index of the next row read_new() returns."""
        return self._b.cursor

    def seek(self, index: int) -> None:
        self._b.seek(_index(index, "index"))

    @property
    def state(self) -> str:
        """The producer: "live", "closed" (closed cleanly), "dead" (gone without closing) or "replaced"."""
        return self._b.state().name

    @property
    def header(self) -> dict:
        """The header fields of docs/format.md, section 2, as validated at attach - but for the wait words and
        the reserved bytes - with state, closed_ns and head as they are now."""
        return self._b.header()

    @property
    def closed(self) -> bool:
        return self._b.closed

    @property
    def lost_total(self) -> int:
        """Rows lost by read_new() since attaching (overwritten before this reader got to them)."""
        return self._b.lost_total

    @property
    def pacing(self) -> dict:
        """What pacing (`pace`) did since attaching, or since the last restart this reader followed:
        {"catch_ups", "pauses", "rows_after_pauses", "paced"} -
        catch-ups are reads that found all there was after rows had come, pauses those after which this reader
        left the ring alone (it was paced), rows_after_pauses what the first reads after them found, paced
        whether it is paced now. pauses / catch_ups near 1: the producer outruns this reader and it reads in
        batches; 0: it sees each row at once."""
        return self._b.pacing

    @property
    def truncated(self) -> bool:
        """True once another process truncated the file under this reader; every read then raises
        FormatError (code "truncated")."""
        return self._b.truncated

    # --- validated reads ---------------------------------------------------------------------------------
    def _empty(self, n: int) -> np.ndarray:
        return np.empty(n, dtype=self.dtype)

    def latest(self) -> Optional[np.void]:
        """The newest row (a structured scalar), or None before the first write."""
        out = self._empty(1)
        return None if self._b.latest(out) is None else out[0]

    def last(self, n: int) -> np.ndarray:
        """Up to n newest rows, oldest first."""
        n = min(_count(n, "n"), self.capacity)
        out = np.empty(n, dtype=self.dtype)
        count = self._b.last(n, out)[1]
        return out if count == n else out[:count]  # the direct path: a snapshot is often small and frequent

    def last_indexed(self, n: int) -> ReadResult:
        """last(n), with the index of the first row (`first`): while the producer writes, the head read
        before or after the call is not where the copied rows end."""
        n = min(_count(n, "n"), self.capacity)
        out = self._empty(n)
        first, count = self._b.last(n, out)
        return ReadResult(out[:count], first, 0, range(first, first))

    def rows(self, a: int, b: int) -> ReadResult:
        """Rows [a, b) that are still valid (at most `capacity` of them: the newest). Rows already overwritten
        are left out at the front (and counted in `lost`); rows not yet written at the end."""
        a, b = _index(a, "a"), _index(b, "b")
        if b < a:
            raise ValueError("rows(a, b) needs a <= b")
        out = self._empty(min(b - a, self.capacity))
        first, count = self._b.rows(a, b, out)
        return ReadResult(out[:count], first, first - a, range(a, first))

    def read_new(self, max: Optional[int] = None, out: Optional[np.ndarray] = None) -> ReadResult:
        """Rows after the cursor (at most `max`, and at most one buffer's worth), and the exact number and range
        of rows lost since the last call if the producer lapped this reader. Advances the cursor. Safe to call
        from several threads: each row is delivered to one of them, and each loss reported once.

        out: an array of this reader's dtype to copy into (rows is then a view of its start), so that a
        polling loop allocates nothing; at most len(out) rows are read."""
        if max is not None:
            max = _count(max, "max")
        if out is None:
            n = self.capacity if max is None else min(max, self.capacity)
            out = self._empty(n)
        else:
            if out is not self._checked_out:  # a polling loop passes the same array: check it once
                if not isinstance(out, np.ndarray) or out.dtype != self.dtype or out.ndim != 1:
                    raise ValueError(f"out must be a 1-D array of this reader's dtype {self.dtype}")
                self._checked_out = out
            n = len(out) if max is None else min(max, len(out))
        first, count, lost_first, lost, restart = self._b.read_new(n, out)
        if restart is not None:  # following: now attached to the new epoch's buffer
            restart = Restart(*restart)
            self._load_schema(f"after its producer restarted (epoch {restart.old_epoch} -> {restart.new_epoch}), ")
            return ReadResult(np.empty(0, dtype=self.dtype), first, 0, range(first, first), restart)
        if count == 0 and lost == 0:
            # Nothing new: the same answer as the last empty poll at this cursor, without building it again.
            empty = self._empty_result
            if empty is None or empty.first != first:
                empty = self._empty_result = ReadResult(out[:0], first, 0, range(first, first))
            return empty
        # The per-row polling path: no slice when the rows fill `out`, and the tuple built without NamedTuple's
        # argument handling (about 0.3 us of a 2 us call).
        rows = out if count == len(out) else out[:count]
        return _new_tuple(ReadResult, (rows, first, lost, range(lost_first, lost_first + lost), None))

    def wait(self, timeout: Optional[float] = None, idle: str = "block") -> bool:
        """Blocks until a row is available at the cursor (True) or `timeout` seconds pass (False). Ctrl-C
        interrupts it with KeyboardInterrupt. idle: "block" (futex), "sleep", "yield" or "spin"."""
        return self._b.wait(timeout, choice(_core.Idle, idle, "idle"))

    @property
    def epoch(self) -> int:
        """The producer's epoch: 1 for a new name, + 1 at each restart (a following reader's changes)."""
        return self._b.epoch

    @property
    def drained(self) -> bool:
        """True when the producer closed or died and every row it wrote was read (or reported lost)."""
        return self.state != "live" and self.cursor >= self.head

    @property
    def finished(self) -> bool:
        """True when there is nothing more to read: drained, and this reader does not follow restarts."""
        return not self.follow and self.drained

    def __iter__(self) -> Iterator[ReadResult]:
        """Batches of new rows (with their losses, and, following, each restart) as they arrive, until the
        reader is `finished` - never, for a reader that follows restarts (Ctrl-C or close() ends it)."""
        while True:
            r = self.read_new()
            if len(r.rows) or r.lost or r.restart:
                yield r
                continue
            if self.finished:
                return
            self.wait(0.1)

    # --- expert access -----------------------------------------------------------------------------------
    def view(self) -> np.ndarray:
        """Zero-copy, read-only view of every slot's row, in slot order (row n is at n % capacity).
        NOT validated: rows may be torn, half-written or stale while the producer runs. The view keeps the
        mapping alive, even after close()."""
        slots = self._b.slots()  # capacity slots: the sequence word, then the row
        return np.ndarray(shape=(self.capacity,), dtype=self.dtype, buffer=slots, offset=_core.SEQ_SIZE,
                          strides=(slots.strides[0],))

    # --- conveniences ------------------------------------------------------------------------------------
    def to_pandas(self, n: Optional[int] = None):
        """The newest n rows (default: all kept) as a pandas DataFrame indexed by row index. Timestamps become
        datetime64[ns], strings str, and array columns one column per element (name[0], name[1], ...)."""
        import pandas as pd  # optional dependency
        res = self.last_indexed(self.capacity if n is None else n)
        data = flat_values(res.rows, self.columns)
        for c in self.columns:
            if c.type == "timestamp_ns":
                data[c.name] = data[c.name].astype("datetime64[ns]")
        return pd.DataFrame(data, index=pd.RangeIndex(res.first, res.first + len(res.rows), name="index"))

    def __getattr__(self, name: str):
        # Columns of the latest row as attributes: reader.temperature. Methods and properties win on clashes.
        if name.startswith("_") or "dtype" not in self.__dict__ or name not in self.dtype.names:
            raise AttributeError(name)
        row = self.latest()
        return None if row is None else row[name]

    def close(self) -> None:
        """Detaches. Views from view() stay valid; every other call raises ValueError."""
        self._b.close()

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"head={self.head}, producer {self.state}"
        return f"<cbuf.Reader {self.path!r} schema={self.schema_name!r} capacity={self.capacity} {state}>"


def open(name_or_path: str, **kwargs) -> Reader:  # noqa: A001 - mirrors builtins.open on purpose
    """Attach to a buffer: cbuf.open("sensors") or cbuf.open("/dev/shm/sensors"). See Reader."""
    return Reader(name_or_path, **kwargs)
