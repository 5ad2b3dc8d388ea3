"""The `cbuf` command: gen, ls, info, tail, stat, record, replay, plot, gc.

Every failure is one line on stderr and a non-zero exit status - never a traceback.
"""
import argparse
import sys

from . import __version__
from .errors import CliError  # noqa: F401  (raised by the tools)


def _add_wait(s) -> None:
    s.add_argument("--wait", type=float, metavar="SECONDS",
                   help="how long to wait for the buffer to appear (default: until Ctrl-C)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cbuf", description="cbuf shared-memory ring buffers: code generation and tools.")
    p.add_argument("--version", action="version", version=f"cbuf {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("gen", help="generate typed C++ and Python code from a schema (cbuf gen --help)", add_help=False)

    s = sub.add_parser("ls", help="list buffers: name, producer state, rows, rate, age")
    s.add_argument("dir", nargs="?", help="directory (default: $CBUF_DIR or /dev/shm, plus a hugetlbfs mount)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--interval", type=float, default=0.2, help="seconds over which write rates are measured")

    s = sub.add_parser("info", help="the whole header, the schema as a table, memory settings, producer identity")
    s.add_argument("buffer", help="name or path")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("tail", help="decoded rows; -f follows and reports lost rows inline")
    s.add_argument("buffer")
    s.add_argument("-n", type=int, default=10, help="rows to show first (default 10)")
    s.add_argument("-f", "--follow", action="store_true",
                   help="keep printing new rows, following producer restarts (waits for the buffer to appear)")
    s.add_argument("--until-closed", action="store_true",
                   help="with -f: stop when the producer closes or dies instead of waiting for a restart")
    s.add_argument("--columns", help="comma-separated columns to show")
    _add_wait(s)
    fmt = s.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true")
    fmt.add_argument("--json", action="store_true")

    s = sub.add_parser("stat", help="write rate, lost rows of a following reader, producer liveness")
    s.add_argument("buffer")
    s.add_argument("-i", "--interval", type=float, default=1.0)
    s.add_argument("--count", type=int, help="stop after this many intervals")
    _add_wait(s)

    s = sub.add_parser("record", help="record rows to .npy, .csv or .parquet")
    s.add_argument("buffer")
    s.add_argument("-o", "--output", required=True, help="FILE.npy, FILE.csv or FILE.parquet")
    s.add_argument("--duration", type=float, help="seconds to record")
    s.add_argument("--rows", type=int, help="rows to record")
    s.add_argument("--from-oldest", action="store_true", help="start with the oldest row kept, not the next one")
    _add_wait(s)

    s = sub.add_parser("replay", help="turn a recording into a live buffer again")
    s.add_argument("file", help="a recording made by cbuf record")
    s.add_argument("--name", help="buffer name or path (default: the schema name)")
    s.add_argument("--capacity", type=int, help="rows kept (default: the schema's)")
    s.add_argument("--replace", action="store_true",
                   help="replace a closed or dead buffer of that name (the default; never a live one)")
    s.add_argument("--no-replace", action="store_true", help="refuse if the name is taken, even by a closed buffer")
    pace = s.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, default=1.0, help="speed factor over the recorded timestamps (default 1)")
    pace.add_argument("--as-fast-as-possible", action="store_true")

    s = sub.add_parser("plot", help="live plot of numeric columns (matplotlib)")
    s.add_argument("buffer")
    s.add_argument("--columns", help="comma-separated columns (default: every numeric column)")
    s.add_argument("--window", type=float, default=10.0, help="seconds shown (by the first timestamp column)")
    s.add_argument("--save", metavar="PNG", help="write one snapshot and exit (headless)")
    _add_wait(s)

    s = sub.add_parser("gc", help="remove buffers whose producer is dead (and, with --closed, closed ones)")
    s.add_argument("dir", nargs="?")
    s.add_argument("--closed", action="store_true", help="also remove buffers their producer closed")
    s.add_argument("--older-than", type=float, metavar="SECONDS",
                   help="only buffers closed (or, dead, created) at least this long ago")
    s.add_argument("--dry-run", action="store_true", help="list what would be removed")
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "gen":
        from cbuf_codegen.cli import main as gen_main
        return gen_main(argv[1:], prog="cbuf gen")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from . import tools
    from .errors import CliError, Error
    try:
        return getattr(tools, "cmd_" + args.command)(args) or 0
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except (CliError, Error) as e:
        print(f"cbuf {args.command}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"cbuf {args.command}: error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
