"""The `cbuf` command: gen, ls, info, tail, stat, record, replay, plot, foxglove, bridge, gc - one module per command, with
args.py (shared argument types), find.py (finding buffers) and present.py (tables, values, CSV, JSON).

Every failure is one line on stderr and a non-zero exit status - never a traceback.
"""
import argparse
import os
import sys

from .. import __version__
from ..errors import CliError, Error
from . import bridge, foxglove, gc, info, ls, plot, record, replay, stat, tail
from .args import Parser

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
        from cbuf_codegen.cli import main as gen_main
        return gen_main(argv[1:], prog="cbuf gen")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
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
