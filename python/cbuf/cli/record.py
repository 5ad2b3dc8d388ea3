"""cbuf record: rows of one or more buffers to .npy, .csv, .parquet, .h5 or .mcap, with the lost ranges and
producer restarts in the metadata (HDF5 and MCAP also as data of their own); optionally split into numbered
segments by size or duration."""
import sys
import time
from pathlib import Path

from .. import recording
from ..formats import Stream
from ..formats.mcap import COMPRESSIONS, ENCODINGS
from ..formats.split import SplitWriter, check_split_writable
from ..reader import Reader
from .args import POSITIVE_INT, POSITIVE_SECONDS, SIZE, add_wait
from .errors import CliError
from .find import open_buffer
from . import stopping
from .present import restart_note

READ_ROWS = 4096  # rows taken from a buffer at a time: a split segment ends between two such batches


def add(sub) -> None:
    s = sub.add_parser("record", help="record rows to .npy, .csv, .parquet, .h5 (HDF5) or .mcap (MCAP)")
    s.add_argument("buffer", nargs="+", help="buffer names or paths (several: one .h5 group or MCAP channel each)")
    s.add_argument("-o", "--output", required=True,
                   help="FILE.npy, FILE.csv, FILE.parquet, FILE.h5 (pip install 'cbuf[hdf5]') or FILE.mcap "
                        "(pip install 'cbuf[mcap]')")
    s.add_argument("--duration", type=POSITIVE_SECONDS, help="seconds to record (default: until Ctrl-C)")
    s.add_argument("--rows", type=POSITIVE_INT, help="rows to record from each buffer (default: until Ctrl-C)")
    s.add_argument("--until-closed", action="store_true",
                   help="also stop when the producers close or die, instead of waiting for a restart")
    s.add_argument("--force", action="store_true", help="overwrite an existing output file")
    s.add_argument("--from-oldest", action="store_true", help="start with the oldest row kept, not the next one")
    s.add_argument("--split-size", type=SIZE, metavar="SIZE",
                   help="write numbered segments (FILE_0000.ext, ...) of about SIZE bytes each (500M, 2GiB)")
    s.add_argument("--split-duration", type=POSITIVE_SECONDS, metavar="SECONDS",
                   help="write numbered segments of SECONDS each")
    s.add_argument("--encoding", choices=ENCODINGS, default="cdr",
                   help="MCAP messages: cdr (the row's bytes, OMG IDL schema; default) or json (JSON Schema)")
    s.add_argument("--compression", choices=COMPRESSIONS, default="zstd", help="MCAP chunks (default zstd)")
    add_wait(s)
    s.set_defaults(func=run)


class _Source:
    """One buffer being recorded: its reader and what it has given."""

    def __init__(self, reader: Reader, k: int):
        self.r, self.k = reader, k
        self.first = self.last = None
        self.got = self.lost = 0
        self.done = False


def _poll(s: _Source, args, writer) -> bool:
    """Reads what is new in one buffer and hands it to the writer; True if anything came."""
    want = READ_ROWS if args.rows is None else min(READ_ROWS, args.rows - s.got)
    res = s.r.read_new(max=want)
    if res.restart:
        if res.restart.schema_changed:
            print(f"cbuf record: {restart_note(res)}; its recording ends with epoch {res.restart.old_epoch}",
                  file=sys.stderr)
            s.done = True
        else:
            writer.restart(s.k, res.restart._asdict(), res.restart.new_epoch)
        return True
    if res.lost:
        s.lost += res.lost
        writer.lost(s.k, res.lost_range.start, res.lost_range.stop)
    if len(res.rows):
        writer.append(s.k, res.first, res.rows)
        s.first = res.first if s.first is None else s.first
        s.last = res.first + len(res.rows) - 1
        s.got += len(res.rows)
        if args.rows is not None and s.got >= args.rows:
            s.done = True
        return True
    if args.until_closed and s.r.drained:
        s.done = True
    return bool(res.lost)


def _read(sources: list, args, tty: bool, writer, t0: float, deadline) -> None:
    """Hands rows to the writer until --rows, --duration, a stop or (--until-closed) the end of every buffer,
    following producer restarts of the same schema; a restart into another schema ends that buffer's part.
    Each buffer is polled in turn without blocking, so a quiet or slow one never holds the others back."""
    shown = 0.0
    while not stopping.requested() and (deadline is None or time.monotonic() < deadline):
        live = [s for s in sources if not s.done]
        if not live:
            return
        busy = False
        for s in live:
            busy |= _poll(s, args, writer)
        if not busy:
            writer.idle()
            if len(live) == 1:
                live[0].r.wait(0.1)
            else:
                time.sleep(0.002)
        if tty and time.monotonic() - shown >= 0.2:
            shown = time.monotonic()
            print(f"\rrecording: {sum(s.got for s in sources)} rows, {sum(s.lost for s in sources)} lost, "
                  f"{shown - t0:.1f} s", end="", file=sys.stderr, flush=True)


def _names(readers: list) -> list:
    names = [r.path.rsplit("/", 1)[-1] for r in readers]
    for i, n in enumerate(names):
        if names.index(n) != i:
            raise CliError(f"{readers[i].path} and {readers[names.index(n)].path} have the same name {n!r}; a "
                           "recording names each buffer once - record them to separate files")
    return names


def run(args) -> int:
    out = Path(args.output)
    split = args.split_size is not None or args.split_duration is not None
    (check_split_writable(out, args.force, len(args.buffer)) if split
     else recording.check_writable(out, args.force, len(args.buffer)))
    stopping.install()  # SIGTERM (timeout, systemd, docker) and Ctrl-C end the recording: the file is written
    readers = []
    try:
        for b in args.buffer:
            readers.append(open_buffer(b, "record", args.wait, live=args.live,
                                       start="oldest" if args.from_oldest else "end"))
        streams = [Stream(name, recording.make_meta(r.path, r.schema, r.fingerprint, r.row_size, 0, 0, 0, [], [],
                                                    epoch=r.epoch), r.dtype, r.columns)
                   for name, r in zip(_names(readers), readers)]
        options = {"encoding": args.encoding, "compression": args.compression} if out.suffix == ".mcap" else {}
        writer = SplitWriter(out, streams, options, args.split_size, args.split_duration, args.force) if split \
            else recording.open_writer(out, streams, **options)
        sources = [_Source(r, k) for k, r in enumerate(readers)]
        tty = sys.stderr.isatty()
        t0 = time.monotonic()
        try:
            _read(sources, args, tty, writer, t0, t0 + args.duration if args.duration is not None else None)
        except BaseException:
            writer.abort()
            raise
        if tty:
            print(file=sys.stderr)
        writer.finish()
    finally:
        for r in readers:
            r.close()
    where = f"{len(writer.done)} segments {writer.done[0].name}..{writer.done[-1].name}" if split else str(out)
    for s in sources:
        span = f" (indices {s.first}..{s.last})" if s.got else ""
        label = f"{s.r.path}: " if len(sources) > 1 else ""
        print(f"{label}recorded {s.got} rows to {where}{span}; lost {s.lost} rows while recording", file=sys.stderr)
    return 0
