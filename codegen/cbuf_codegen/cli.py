"""Command line: `python -m cbuf_codegen SCHEMA -o DIR` (also `cbuf gen ...`). Prints nothing on success and
one paragraph, no traceback, on failure (exit status 1)."""
import argparse
import re
import sys

from .errors import SchemaError
from .names import reserved_reason

_NS_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*$")


def parser(prog: str = "cbuf gen") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Generate typed C++ and Python code from a cbuf schema.")
    p.add_argument("schema", help="the JSON column schema file (docs/schema.md describes it)")
    p.add_argument("-o", "--output", metavar="DIR", help="directory for the C++ header (default: .)", default=".")
    p.add_argument("--python-out", metavar="DIR", help="directory for the Python module (default: the -o directory)")
    p.add_argument("--idl-out", metavar="DIR", help="directory for the row's OMG IDL (MCAP/Foxglove cdr messages)")
    p.add_argument("--namespace", help="C++ namespace (default: the schema name); a::b nests")
    p.add_argument("--no-cpp", action="store_true", help="skip the C++ header")
    p.add_argument("--no-python", action="store_true", help="skip the Python module")
    p.add_argument("--check", action="store_true", help="only check the schema; write nothing")
    p.add_argument("--version", action="store_true", help="print the generator version and exit")
    return p


def main(argv=None, prog: str = "cbuf gen") -> int:
    from . import __version__
    from .pipeline import generate
    if argv is None:
        argv = sys.argv[1:]
    if "--version" in argv:
        print(f"cbuf-gen {__version__}")
        return 0
    args = parser(prog).parse_args(argv)
    if args.namespace is not None:
        bad = not _NS_RE.match(args.namespace) or any(reserved_reason(p) for p in args.namespace.split("::"))
        if bad:
            print(f"{prog}: error: --namespace {args.namespace!r} is not a usable C++ namespace; use identifiers "
                  "joined by '::', none a keyword", file=sys.stderr)
            return 2
    try:
        if args.check:
            from .pipeline import load_model
            load_model(args.schema)
            return 0
        generate(args.schema,
                 None if args.no_cpp else args.output,
                 None if args.no_python else (args.python_out or args.output),
                 args.namespace, args.idl_out)
    except SchemaError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"{prog}: error: cannot write output: {e}", file=sys.stderr)
        return 1
    return 0
