"""The `cbuf` command: gen, ls, info, tail, stat, record, replay, plot, gc.

Every failure is one line on stderr and a non-zero exit status - never a traceback.
"""
import argparse
import os
import sys

from . import __version__
from .errors import CliError  # noqa: F401  (raised by the tools)


class _Parser(argparse.ArgumentParser):
    """Bad arguments are one line on stderr and exit status 1, like every other bad input (subcommands share
    this class: argparse builds them with the parent's)."""

    def error(self, message: str):
        self.exit(1, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind, low: float, inclusive: bool = True):
    """An argparse type: a number of `kind` >= low (or > low)."""
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        if v < low or (not inclusive and v == low) or v != v:
            raise argparse.ArgumentTypeError(f"{text} must be {'>=' if inclusive else '>'} {low}")
        return v
    return parse


_COUNT = _number(int, 0)                        # 0, 1, 2, ...
_POSITIVE_INT = _number(int, 1)                 # 1, 2, ...
_SECONDS = _number(float, 0)                    # >= 0
_POSITIVE_SECONDS = _number(float, 0, inclusive=False)  # > 0


def _add_wait(s) -> None:
    s.add_argument("--wait", type=_SECONDS, metavar="SECONDS",
                   help="how long to wait for the buffer to appear (default: until Ctrl-C)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cbuf", description="cbuf shared-memory ring buffers: code generation and tools.")
    p.add_argument("--version", action="version", version=f"cbuf {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("gen", help="generate typed C++ and Python code from a schema (cbuf gen --help)", add_help=False)

    s = sub.add_parser("ls", help="list buffers: name, producer state, rows, rate, age")
    s.add_argument("dir", nargs="?", help="directory (default: $CBUF_DIR or /dev/shm, plus a hugetlbfs mount)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--interval", type=_POSITIVE_SECONDS, default=0.2, help="seconds over which write rates are measured")

    s = sub.add_parser("info", help="the whole header, the schema as a table, memory settings, producer identity")
    s.add_argument("buffer", help="name or path")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("tail", help="decoded rows; -f follows and reports lost rows inline")
    s.add_argument("buffer")
    s.add_argument("-n", type=_COUNT, default=10, help="rows to show first (default 10)")
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
    s.add_argument("-i", "--interval", type=_POSITIVE_SECONDS, default=1.0, help="seconds per line (default 1)")
    s.add_argument("--count", type=_POSITIVE_INT, help="stop after this many intervals")
    _add_wait(s)

    s = sub.add_parser("record", help="record rows to .npy, .csv or .parquet")
    s.add_argument("buffer")
    s.add_argument("-o", "--output", required=True, help="FILE.npy, FILE.csv or FILE.parquet")
    s.add_argument("--duration", type=_POSITIVE_SECONDS, help="seconds to record (default: until Ctrl-C)")
    s.add_argument("--rows", type=_POSITIVE_INT, help="rows to record (default: until Ctrl-C)")
    s.add_argument("--until-closed", action="store_true",
                   help="also stop when the producer closes or dies, instead of waiting for a restart")
    s.add_argument("--force", action="store_true", help="overwrite an existing output file")
    s.add_argument("--from-oldest", action="store_true", help="start with the oldest row kept, not the next one")
    _add_wait(s)

    s = sub.add_parser("replay", help="turn a recording into a live buffer again")
    s.add_argument("file", help="a recording made by cbuf record")
    s.add_argument("--name", help="buffer name or path (default: the schema name)")
    s.add_argument("--capacity", type=_POSITIVE_INT, help="rows kept (default: the schema's)")
    s.add_argument("--replace", action="store_true",
                   help="replace a closed or dead buffer of that name (the default; never a live one)")
    s.add_argument("--no-replace", action="store_true", help="refuse if the name is taken, even by a closed buffer")
    pace = s.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=_POSITIVE_SECONDS, default=1.0,
                      help="speed factor over the recorded timestamps (default 1)")
    pace.add_argument("--as-fast-as-possible", action="store_true")

    s = sub.add_parser("plot", help="live plot of numeric columns (matplotlib)")
    s.add_argument("buffer")
    s.add_argument("--columns", help="comma-separated columns (default: every numeric column)")
    s.add_argument("--window", type=_POSITIVE_SECONDS, default=10.0, help="seconds shown (by the first timestamp column)")
    s.add_argument("--save", metavar="PNG", help="write one snapshot and exit (headless)")
    _add_wait(s)

    s = sub.add_parser("gc", help="remove buffers whose producer is dead (and, with --closed, closed ones)")
    s.add_argument("dir", nargs="?")
    s.add_argument("--closed", action="store_true", help="also remove buffers their producer closed")
    s.add_argument("--older-than", type=_SECONDS, metavar="SECONDS",
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
        where = f"{e.filename}: " if e.filename else ""
        print(f"cbuf {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except Exception as e:  # a bug of ours: still one line, never a traceback (CBUF_DEBUG=1 shows it)
        if os.environ.get("CBUF_DEBUG"):
            raise
        print(f"cbuf {args.command}: internal error: {type(e).__name__}: {e} (please report it; CBUF_DEBUG=1 "
              "shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
