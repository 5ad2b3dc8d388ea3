"""The `cbuf` command. Subcommands: gen (code generation); more tools are added as they land."""
import argparse
import sys

from . import __version__


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "gen":
        from cbuf_codegen.cli import main as gen_main
        return gen_main(argv[1:], prog="cbuf gen")
    p = argparse.ArgumentParser(prog="cbuf", description="cbuf shared-memory ring buffers: tools.")
    p.add_argument("--version", action="version", version=f"cbuf {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("gen", help="generate typed C++ and Python code from a schema (cbuf gen --help)")
    args = p.parse_args(argv)
    if args.command is None:
        p.print_help()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
