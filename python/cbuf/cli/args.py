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
