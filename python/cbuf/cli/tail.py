"""cbuf tail: the newest rows, decoded; -f follows, reporting lost rows and producer restarts inline."""
import sys

from .errors import CliError
from .args import COUNT, add_wait
from .find import open_buffer
from . import stopping
from .present import RowPrinter, choose_columns, restart_note


def add(sub) -> None:
    s = sub.add_parser("tail", help="decoded rows; -f follows and reports lost rows inline")
    s.add_argument("buffer")
    s.add_argument("-n", type=COUNT, default=10, help="rows to show first (default 10)")
    s.add_argument("-f", "--follow", action="store_true",
                   help="keep printing new rows, following producer restarts (waits for the buffer to appear)")
    s.add_argument("--until-closed", action="store_true",
                   help="with -f: stop when the producer closes or dies instead of waiting for a restart")
    s.add_argument("--columns", help="comma-separated columns to show")
    add_wait(s)
    fmt = s.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="CSV, array columns as name[0], name[1], ...")
    fmt.add_argument("--json", action="store_true", help="one JSON object per row")
    s.set_defaults(func=run)


def run(args) -> int:
    following = args.follow and not args.until_closed
    stop = stopping.install() if args.follow else None  # SIGTERM or Ctrl-C ends tail -f with status 0
    r = open_buffer(args.buffer, "tail" if following else "", args.wait, live=args.live)
    cols = choose_columns(r, args.columns)
    mode = "json" if args.json else "csv" if args.csv else "table"
    out = RowPrinter(r, cols, mode)
    shown = r.last_indexed(max(0, args.n))
    out.rows(shown.first, shown.rows)
    if not args.follow:
        return 0
    r.seek(shown.first + len(shown.rows) if args.n > 0 else r.head)
    while not stop.is_set():
        res = r.read_new(max=1024)
        if res.restart:
            out.note(restart_note(res))
            missing = [c for c in cols if c not in r.dtype.names]
            if missing:
                raise CliError(f"{r.path}: the restarted producer's schema has no column {missing[0]!r}; "
                               f"the columns are now {', '.join(r.dtype.names)}")
            out = RowPrinter(r, cols, mode)
            continue
        if res.lost:
            out.note(f"lost {res.lost} rows ({res.lost_range.start}..{res.lost_range.stop - 1}): "
                     "the producer overwrote them before they were read")
        if len(res.rows):
            out.rows(res.first, res.rows)
            sys.stdout.flush()
            continue
        if r.finished:  # --until-closed; a following reader waits for the next producer instead
            out.note(f"producer {r.state}; {r.head} rows written")
            return 0
        r.wait(0.25)
    return 0
