"""The `cbuf` command: gen, ls, info, tail, stat, record, replay, plot, foxglove, bridge, gc - one module per command, with
args.py (shared argument types), find.py (finding buffers) and present.py (tables, values, CSV, JSON).

Every failure is one line on stderr and a non-zero exit status - never a traceback.
"""
from . import stopping

stopping.early()  # before the imports below (numpy, the runtime): a SIGTERM that comes meanwhile is kept

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from .. import __version__  # noqa: E402
from ..errors import Error
from .errors import CliError
from . import bridge, foxglove, gc, info, ls, plot, record, replay, stat, tail  # noqa: E402
from .args import Parser  # noqa: E402
from .stopping import Stopped  # noqa: E402

COMMANDS = (ls, info, tail, stat, record, replay, plot, foxglove, bridge, gc)  # each adds its parser and sets func=run


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="cbuf", description="cbuf shared-memory ring buffers: code generation and tools.")
    p.add_argument("--version", action="version", version=f"cbuf {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("gen", help="generate typed C++ and Python code from a schema (cbuf gen --help)", add_help=False)
    for command in COMMANDS:
        command.add(sub)
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "gen":
        stopping.release()
        from cbuf_codegen.cli import main as gen_main
        return gen_main(argv[1:], prog="cbuf gen")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command not in stopping.WATCHING:
            stopping.release()
    except Stopped:
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        return 130
    except Stopped:  # SIGTERM or Ctrl-C while waiting to start (stopping.py): nothing to sum up
        return 0
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
    finally:
        if args.command in stopping.WATCHING:
            stopping.done()
