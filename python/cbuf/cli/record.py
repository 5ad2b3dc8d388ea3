"""cbuf record: rows to .npy, .csv, .parquet, .h5 or .mcap, with the lost ranges and producer restarts in the
metadata (HDF5 and MCAP also as data of their own)."""
import sys
import time
from pathlib import Path

from .. import recording
from ..reader import Reader
from .args import POSITIVE_INT, POSITIVE_SECONDS, add_wait
from .find import open_buffer
from . import stopping
from .present import restart_note


def add(sub) -> None:
    s = sub.add_parser("record", help="record rows to .npy, .csv, .parquet, .h5 (HDF5) or .mcap (MCAP)")
    s.add_argument("buffer")
    s.add_argument("-o", "--output", required=True,
                   help="FILE.npy, FILE.csv, FILE.parquet, FILE.h5 (pip install 'cbuf[hdf5]') or FILE.mcap "
                        "(pip install 'cbuf[mcap]')")
    s.add_argument("--duration", type=POSITIVE_SECONDS, help="seconds to record (default: until Ctrl-C)")
    s.add_argument("--rows", type=POSITIVE_INT, help="rows to record (default: until Ctrl-C)")
    s.add_argument("--until-closed", action="store_true",
                   help="also stop when the producer closes or dies, instead of waiting for a restart")
    s.add_argument("--force", action="store_true", help="overwrite an existing output file")
    s.add_argument("--from-oldest", action="store_true", help="start with the oldest row kept, not the next one")
    add_wait(s)
    s.set_defaults(func=run)


class _Progress:
    def __init__(self):
        self.first = None  # index of the first row recorded
        self.got = 0
        self.lost_ranges = []
        self.restarts = []

    @property
    def lost(self) -> int:
        return sum(b - a for a, b in self.lost_ranges)


def _read(r: Reader, args, tty: bool, writer, p: _Progress, t0: float, deadline) -> None:
    """Hands rows to the writer until --rows or --duration, following producer restarts of the same schema
    (noted in p.restarts); a restart into another schema ends the recording."""
    while (args.rows is None or p.got < args.rows) and (deadline is None or time.monotonic() < deadline) \
            and not stopping.requested():
        want = r.capacity if args.rows is None else min(r.capacity, args.rows - p.got)
        res = r.read_new(max=want)
        if res.restart:
            if res.restart.schema_changed:
                print(f"cbuf record: {restart_note(res)}; the recording ends with epoch {res.restart.old_epoch}",
                      file=sys.stderr)
                return
            p.restarts.append({**res.restart._asdict(), "at_row": p.got})
            continue
        if res.lost:
            p.lost_ranges.append([res.lost_range.start, res.lost_range.stop])
            writer.lost(res.lost_range.start, res.lost_range.stop)
        if len(res.rows):
            writer.append(res.first, res.rows)
            if p.first is None:
                p.first = res.first
            p.got += len(res.rows)
        elif args.until_closed and r.drained:
            return
        else:
            writer.idle()
            r.wait(0.1)
        if tty:
            print(f"\rrecording {r.path}: {p.got} rows, {p.lost} lost, {time.monotonic() - t0:.1f} s", end="",
                  file=sys.stderr, flush=True)


def run(args) -> int:
    out = Path(args.output)
    recording.check_writable(out, args.force)
    stopping.install()  # SIGTERM (timeout, systemd, docker) and Ctrl-C end the recording: the file is written
    r = open_buffer(args.buffer, "record", args.wait, live=args.live,
                    start="oldest" if args.from_oldest else "end")
    tty = sys.stderr.isatty()
    p = _Progress()
    writer = recording.open_writer(out, recording.make_meta(r.path, r.schema, r.fingerprint, r.row_size, 0, 0, 0,
                                                            [], []), r.dtype, r.columns)
    t0 = time.monotonic()
    deadline = t0 + args.duration if args.duration is not None else None
    try:
        _read(r, args, tty, writer, p, t0, deadline)
    except BaseException:
        writer.abort()
        raise
    if tty:
        print(file=sys.stderr)
    first = p.first if p.first is not None else 0
    meta = recording.make_meta(r.path, r.schema, r.fingerprint, r.row_size, first, p.got, p.lost, p.lost_ranges,
                               p.restarts)
    writer.finish(meta, r.epoch)
    print(f"recorded {p.got} rows to {out}" + (f" (indices {first}..{first + p.got - 1})" if p.got else "") +
          f"; lost {p.lost} rows while recording", file=sys.stderr)
    return 0
