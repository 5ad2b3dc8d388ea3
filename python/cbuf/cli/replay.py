"""cbuf replay: a recording made by cbuf record becomes live buffers again, paced by its timestamps - one
buffer per buffer recorded, from one file or from the segments of a split recording."""
import sys
import threading
import time
from pathlib import Path

import numpy as np

from .. import _core, recording
from .._dtype import time_column
from .errors import CliError
from . import stopping
from .args import POSITIVE_INT, POSITIVE_SECONDS


def add(sub) -> None:
    s = sub.add_parser("replay", help="turn a recording into live buffers again")
    s.add_argument("file", nargs="+", help="a recording made by cbuf record; or the segments of a split recording "
                                           "(run_*.mcap), or their directory")
    s.add_argument("--name", help="buffer name or path (default: the schema name; with several buffers, the "
                                  "recorded buffers' names)")
    s.add_argument("--only", metavar="NAME", help="replay only this buffer of a recording of several")
    s.add_argument("--capacity", type=POSITIVE_INT, help="rows kept (default: the schema's)")
    s.add_argument("--replace", action="store_true",
                   help="replace a closed or dead buffer of that name (the default; never a live one)")
    s.add_argument("--no-replace", action="store_true", help="refuse if the name is taken, even by a closed buffer")
    s.add_argument("--renumber", action="store_true",
                   help="number the rows from 0 (default: the recorded indices, rows lost while recording as "
                        "lost rows)")
    pace = s.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=POSITIVE_SECONDS, default=1.0,
                      help="speed factor over the recorded timestamps (default 1)")
    pace.add_argument("--as-fast-as-possible", action="store_true")
    s.set_defaults(func=run)


class _Replay:
    """One recorded buffer turned into a live one."""

    def __init__(self, rec, name: str, args):
        self.rec, self.args = rec, args
        meta, schema = rec.meta, rec.schema
        kept = schema.get("capacity")
        # Rows keep their index: the recorded ones (rows lost while recording become skipped rows, which readers
        # report lost), unless --renumber or the recording does not know them (a producer restart inside it).
        self.keep = not args.renumber and rec.first_index is not None
        # Room for every row recorded - and, keeping indices, for the lost ones between them (their skipped marks
        # take slots too), up to 16 times the rows (--capacity for more).
        rows = max(kept if isinstance(kept, int) else 0, rec.rows, 1)
        span = rec.last_index - rec.first_index + 1 if self.keep else rows
        capacity = args.capacity or min(max(rows, min(span, 16 * rows)), _core.MAX_CAPACITY)
        self.p = _core.Producer(name, meta["row_size"], capacity, meta["schema_json"], meta["fingerprint"],
                                if_exists=_core.IfExists.fail if args.no_replace else _core.IfExists.replace,
                                replace_hint="drop --no-replace",
                                base_index=rec.first_index if self.keep else 0)
        self.written = 0
        self.error = None
        self.ts_col = time_column(rec.columns)

    def put(self, rows, idx) -> None:
        p = self.p
        if self.keep:
            cut = np.flatnonzero(np.diff(idx) != 1) + 1  # runs of consecutive indices
            for run, at in zip(np.split(rows, cut), np.split(idx, cut)):
                if int(at[0]) > p.next_index:
                    p.skip(int(at[0]) - p.next_index)
                p.write_batch(run)
        else:
            p.write_batch(rows)
        self.written += len(rows)

    def first_time(self):
        """The first row's timestamp, or None (rows not timed, or --as-fast-as-possible)."""
        if self.args.as_fast_as_possible or self.ts_col is None:
            return None
        for rows, _ in self.rec.indexed():
            return int(rows[self.ts_col][0]) if len(rows) else None
        return None

    def run(self, stop: threading.Event, t0_wall: float, t0) -> None:
        try:
            self._run(stop, t0_wall, t0)
        except BaseException as e:  # a damaged batch found while replaying: the command reports it
            self.error = e
            stop.set()

    def _run(self, stop: threading.Event, t0_wall: float, t0) -> None:
        """Writes every row, each at its recorded time relative to (t0_wall, t0), or at once if not paced."""
        rate = self.args.rate
        for rows, idx in self.rec.indexed():  # read again, a batch at a time: memory stays bounded
            if stop.is_set():
                return
            if t0 is None:
                self.put(rows, idx)
                continue
            ts = rows[self.ts_col].astype(np.int64)
            i = 0
            while i < len(rows) and not stop.is_set():
                delay = t0_wall + (int(ts[i]) - t0) / 1e9 / rate - time.monotonic()
                if delay > 0:
                    stop.wait(delay)
                    continue
                j = i + 1
                while j < len(rows) and t0_wall + (int(ts[j]) - t0) / 1e9 / rate <= time.monotonic():
                    j += 1
                self.put(rows[i:j], idx[i:j] if self.keep else None)
                i = j


def run(args) -> int:
    stop = stopping.install()  # SIGTERM or Ctrl-C ends the replay; the buffers are closed as at their end
    recs = recording.load_all([Path(f) for f in args.file])  # all checked (streaming) before anything is created
    if args.only is not None:
        picked = [r for r in recs if r.name == args.only]
        if not picked:
            raise CliError(f"{args.file[0]}: has no buffer {args.only!r}; it holds {', '.join(r.name for r in recs)}")
        recs = picked
    if args.name and len(recs) > 1:
        raise CliError(f"--name names one buffer, and {args.file[0]} holds {len(recs)} "
                       f"({', '.join(r.name for r in recs)}); pick one with --only")
    for r in recs:
        for note in r.notes:
            print(f"cbuf replay: {note}", file=sys.stderr)
    replays = []
    try:
        for r in recs:
            schema_name = r.schema.get("name") if isinstance(r.schema.get("name"), str) else ""
            name = args.name or (r.name if len(recs) > 1 else (schema_name or Path(args.file[0]).stem))
            replays.append(_Replay(r, name, args))
            print(replays[-1].p.path, flush=True)
        starts = [x.first_time() for x in replays]
        t0 = min((s for s in starts if s is not None), default=None)
        t0_wall = time.monotonic()
        if len(replays) == 1:
            replays[0].run(stop, t0_wall, t0 if starts[0] is not None else None)
        else:  # one thread per buffer: each keeps its own times, none waits for another
            threads = [threading.Thread(target=x.run, args=(stop, t0_wall, t0 if s is not None else None),
                                        daemon=True) for x, s in zip(replays, starts)]
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(0.1)
        for x in replays:
            if x.error is not None:
                raise x.error
    finally:
        for x in replays:
            x.p.close()
    for x in replays:
        print(f"replayed {x.written} rows into {x.p.path}" + (f" (stopped; the recording has {x.rec.rows})"
                                                              if x.written < x.rec.rows else ""), file=sys.stderr)
    return 0
