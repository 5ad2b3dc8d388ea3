"""How the commands show things: one table printer, one formatter of values, and rows as a table, CSV (the
standard csv module, with the flat column naming of recordings) or JSON lines."""
import json
import sys
import time

import numpy as np

from .._dtype import flat_columns
from .._jsonrows import json_float, json_int
from .errors import CliError
from ..reader import Reader
from ..formats.csv import lines as csv_lines


class Table:
    """Aligned columns. The widths are fixed by the first block of lines, so rows can stream."""

    def __init__(self, head, right: bool = False, indent: str = "", out=None):
        self.head, self.right, self.indent, self.out = list(head), right, indent, out or sys.stdout
        self.widths = None

    def add(self, lines) -> None:
        lines = [[str(v) for v in line] for line in lines]
        if self.widths is None:
            self.widths = [max(len(x) for x in col) for col in zip(self.head, *lines)]
            lines = [self.head] + lines
        for line in lines:
            cells = (v.rjust(w) if self.right else v.ljust(w) for v, w in zip(line, self.widths))
            print(self.indent + "  ".join(cells).rstrip(), file=self.out)


def value_text(value, typ: str) -> str:
    """A value for people: strings as text, timestamps as ISO time, floats with 6 significant digits."""
    if typ.startswith("string["):
        return bytes(value).decode("utf-8", "replace")
    if typ == "timestamp_ns":
        return str(np.datetime64(int(value), "ns"))
    if isinstance(value, np.ndarray):
        return "[" + ",".join(value_text(v, typ.split("[")[0]) for v in value) + "]"
    if isinstance(value, (np.floating, float)):
        return f"{value:.6g}"
    if isinstance(value, np.bool_):
        return "true" if value else "false"
    return str(value)


def value_json(value, typ: str):
    """A value for JSON: strings as text, arrays as lists, NaN and infinities as "nan", "inf", "-inf", integers
    beyond 2^53 - 1 as decimal strings (the rules of every JSON the package writes: _jsonrows)."""
    if typ.startswith("string["):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [value_json(v, typ.split("[")[0]) for v in value]
    if isinstance(value, np.generic):
        v = value.item()
        return json_float(v) if isinstance(v, float) else json_int(v) if type(v) is int else v
    return value


def choose_columns(r: Reader, spec) -> list:
    """The names --columns selects (default: all), checked against the buffer's columns."""
    names = list(r.dtype.names)
    if not spec:
        return names
    chosen = [c.strip() for c in spec.split(",") if c.strip()]
    if not chosen:
        raise CliError(f"--columns {spec!r} names no column; the columns are {', '.join(names)}")
    for c in chosen:
        if c not in names:
            raise CliError(f"unknown column {c!r}; the columns are {', '.join(names)}")
    return chosen


class RowPrinter:
    """Rows with their row index: an aligned table, CSV (array columns flattened to name[0], name[1], ...,
    values exactly as `cbuf record -o FILE.csv` writes them) or one JSON object per line."""

    def __init__(self, r: Reader, names: list, mode: str = "table", out=None):
        self.columns = [c for c in r.columns if c.name in names]
        self.names, self.mode, self.out = names, mode, out or sys.stdout
        types = {c.name: c.type for c in r.columns}
        self.types = [types[n] for n in names]
        self.table = Table(["row_index"] + names, right=True, out=self.out)
        self.started = False

    def rows(self, first: int, rows) -> None:
        if self.mode == "json":
            for i, row in enumerate(rows):
                rec = {"row_index": first + i, **{n: value_json(row[n], t) for n, t in zip(self.names, self.types)}}
                print(json.dumps(rec), file=self.out)
        elif self.mode == "csv":
            if not self.started:
                print(",".join(["row_index", *flat_columns(self.columns)]), file=self.out)
            self.out.write(csv_lines(rows, self.columns, first, "\n"))
        elif len(rows) or not self.started:
            self.table.add([[first + i] + [value_text(row[n], t) for n, t in zip(self.names, self.types)]
                            for i, row in enumerate(rows)])
        self.started = True

    def note(self, text: str) -> None:
        print(f"# {text}", file=self.out)


def restart_note(res) -> str:
    rs = res.restart
    return (f"producer restarted: epoch {rs.old_epoch} ended at row {rs.old_end}, epoch {rs.new_epoch} starts at "
            f"row {rs.new_start}" + (" with another schema" if rs.schema_changed else ""))


def age(ns: int) -> str:
    s = max(0.0, time.time() - ns / 1e9)
    return f"{s:.0f}s" if s < 120 else f"{s / 60:.0f}m" if s < 7200 else f"{s / 3600:.0f}h"
