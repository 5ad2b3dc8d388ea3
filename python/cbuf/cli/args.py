"""What every command's arguments share: one-line argument errors and checked number types."""
import argparse


class Parser(argparse.ArgumentParser):
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


COUNT = _number(int, 0)                                # 0, 1, 2, ...
POSITIVE_INT = _number(int, 1)                         # 1, 2, ...
SECONDS = _number(float, 0)                            # >= 0
POSITIVE_SECONDS = _number(float, 0, inclusive=False)  # > 0


def add_wait(s) -> None:
    s.add_argument("--wait", type=SECONDS, metavar="SECONDS",
                   help="how long to wait for the buffer to appear (default: until Ctrl-C)")
    s.add_argument("--live", action="store_true",
                   help="wait for a live producer: pass over a buffer an earlier run left closed or dead")


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "kb": 10**3, "m": 1 << 20, "mib": 1 << 20, "mb": 10**6,
          "g": 1 << 30, "gib": 1 << 30, "gb": 10**9, "t": 1 << 40, "tib": 1 << 40, "tb": 10**12}


def SIZE(text: str) -> int:  # noqa: N802 - an argparse type, named like the others
    """A size in bytes: 500M, 2GiB, 1.5G (binary units), 100MB (decimal), or a plain number of bytes."""
    t = text.strip()
    i = len(t.rstrip("BbIiKkMmGgTt "))
    number, unit = t[:i], t[i:].strip().lower()
    try:
        v = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 500M, 2GiB, 100MB)") from None
    if unit not in _UNITS or not v > 0 or v != v:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 500M, 2GiB, 100MB)")
    return max(1, int(v * _UNITS[unit]))
