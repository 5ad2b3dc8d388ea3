"""cbuf record: rows to .npy, .csv or .parquet, with the lost ranges and producer restarts in the metadata."""
import sys
import time
from pathlib import Path

import numpy as np

from .. import recording
from ..reader import Reader
from .args import POSITIVE_INT, POSITIVE_SECONDS, add_wait
from .find import open_buffer
from .present import restart_note


def add(sub) -> None:
    s = sub.add_parser("record", help="record rows to .npy, .csv or .parquet")
    s.add_argument("buffer")
    s.add_argument("-o", "--output", required=True, help="FILE.npy, FILE.csv or FILE.parquet")
    s.add_argument("--duration", type=POSITIVE_SECONDS, help="seconds to record (default: until Ctrl-C)")
    s.add_argument("--rows", type=POSITIVE_INT, help="rows to record (default: until Ctrl-C)")
    s.add_argument("--until-closed", action="store_true",
                   help="also stop when the producer closes or dies, instead of waiting for a restart")
    s.add_argument("--force", action="store_true", help="overwrite an existing output file")
    s.add_argument("--from-oldest", action="store_true", help="start with the oldest row kept, not the next one")
    add_wait(s)
    s.set_defaults(func=run)


def _read(r: Reader, args, tty: bool, chunks: list, lost_ranges: list, restarts: list, t0: float,
          deadline) -> None:
    """Reads into chunks (ReadResults) until --rows or --duration, following producer restarts of the same
    schema (noted in restarts); a restart into another schema ends the recording."""
    got = lost = 0
    while (args.rows is None or got < args.rows) and (deadline is None or time.monotonic() < deadline):
        want = r.capacity if args.rows is None else min(r.capacity, args.rows - got)
        res = r.read_new(max=want)
        if res.restart:
            if res.restart.schema_changed:
                print(f"cbuf record: {restart_note(res)}; the recording ends with epoch {res.restart.old_epoch}",
                      file=sys.stderr)
                return
            restarts.append({**res.restart._asdict(), "at_row": got})
            continue
        if res.lost:
            lost += res.lost
            lost_ranges.append([res.lost_range.start, res.lost_range.stop])
        if len(res.rows):
            chunks.append(res)
            got += len(res.rows)
        elif args.until_closed and r.drained:
            return
        else:
            r.wait(0.1)
        if tty:
            print(f"\rrecording {r.path}: {got} rows, {lost} lost, {time.monotonic() - t0:.1f} s", end="",
                  file=sys.stderr, flush=True)


def run(args) -> int:
    out = Path(args.output)
    recording.check_writable(out, args.force)
    r = open_buffer(args.buffer, "record", args.wait, start="oldest" if args.from_oldest else "end")
    tty = sys.stderr.isatty()
    chunks, lost_ranges, restarts = [], [], []
    t0 = time.monotonic()
    deadline = t0 + args.duration if args.duration is not None else None
    try:
        _read(r, args, tty, chunks, lost_ranges, restarts, t0, deadline)
    except KeyboardInterrupt:  # Ctrl-C ends the recording; what was read is written out below
        pass
    if tty:
        print(file=sys.stderr)
    got = sum(len(c.rows) for c in chunks)
    lost = sum(b - a for a, b in lost_ranges)
    first = chunks[0].first if chunks else 0
    data = np.empty(got, dtype=r.dtype)  # the row layout, padding included (np.concatenate would pack it)
    at = 0
    for c in chunks:
        data[at:at + len(c.rows)] = c.rows
        at += len(c.rows)
    meta = recording.make_meta(r.path, r.schema, r.fingerprint, r.row_size, first, got, lost, lost_ranges,
                               restarts)
    recording.save(out, data, meta)
    print(f"recorded {got} rows to {out}" + (f" (indices {first}..{first + got - 1})" if got else "") +
          f"; lost {lost} rows while recording", file=sys.stderr)
    return 0
