"""cbuf replay: a recording made by cbuf record becomes a live buffer again, paced by its timestamps."""
import sys
import time
from pathlib import Path

import numpy as np

from .. import _core, recording
from .._dtype import time_column
from . import stopping
from .args import POSITIVE_INT, POSITIVE_SECONDS


def add(sub) -> None:
    s = sub.add_parser("replay", help="turn a recording into a live buffer again")
    s.add_argument("file", help="a recording made by cbuf record")
    s.add_argument("--name", help="buffer name or path (default: the schema name)")
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


def run(args) -> int:
    stop = stopping.install()  # SIGTERM or Ctrl-C ends the replay; the buffer is closed as at its end
    rec = recording.load(Path(args.file))  # the whole recording is checked (streaming) before anything is created
    meta, schema = rec.meta, rec.schema
    name = args.name or (schema.get("name") if isinstance(schema.get("name"), str) else "") or Path(args.file).stem
    kept = schema.get("capacity")
    # Rows keep their index: the recorded ones (rows lost while recording become skipped rows, which readers
    # report lost), unless --renumber or the recording does not know them (a producer restart inside it).
    keep = not args.renumber and rec.first_index is not None
    # Room for every row recorded - and, keeping indices, for the lost ones between them (their skipped marks
    # take slots too), up to 16 times the rows (--capacity for more).
    rows = max(kept if isinstance(kept, int) else 0, rec.rows, 1)
    span = rec.last_index - rec.first_index + 1 if keep else rows
    capacity = args.capacity or min(max(rows, min(span, 16 * rows)), _core.MAX_CAPACITY)
    p = _core.Producer(name, meta["row_size"], capacity, meta["schema_json"], meta["fingerprint"],
                       if_exists=_core.IfExists.fail if args.no_replace else _core.IfExists.replace,
                       replace_hint="drop --no-replace",
                       base_index=rec.first_index if keep else 0)
    print(p.path, flush=True)

    def put(rows, idx):
        nonlocal written
        if keep:
            cut = np.flatnonzero(np.diff(idx) != 1) + 1  # runs of consecutive indices
            for run, at in zip(np.split(rows, cut), np.split(idx, cut)):
                if int(at[0]) > p.next_index:
                    p.skip(int(at[0]) - p.next_index)
                p.write_batch(run)
        else:
            p.write_batch(rows)
        written += len(rows)
    ts_col = time_column(rec.columns)
    paced = not args.as_fast_as_possible and ts_col is not None
    t0 = t0_wall = None
    written = 0
    try:
        for rows, idx in rec.indexed():  # read again, a batch at a time: memory stays bounded
            if stop.is_set():
                break
            if not paced:
                put(rows, idx)
                continue
            ts = rows[ts_col].astype(np.int64)
            if t0 is None:
                t0_wall, t0 = time.monotonic(), int(ts[0])
            i = 0
            while i < len(rows) and not stop.is_set():
                delay = t0_wall + (int(ts[i]) - t0) / 1e9 / args.rate - time.monotonic()
                if delay > 0:
                    stop.wait(delay)
                    continue
                j = i + 1
                while j < len(rows) and t0_wall + (int(ts[j]) - t0) / 1e9 / args.rate <= time.monotonic():
                    j += 1
                put(rows[i:j], idx[i:j] if keep else None)
                i = j
    finally:
        p.close()
    print(f"replayed {written} rows into {p.path}" + (f" (stopped; the recording has {rec.rows})"
                                                       if written < rec.rows else ""), file=sys.stderr)
    return 0
