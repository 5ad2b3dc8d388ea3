"""Implementations of the `cbuf` subcommands (argument parsing lives in cli.py)."""
import csv
import difflib
import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

from . import _core, recording
from .errors import CliError, Error, NotFoundError
from .reader import Reader


# --- finding buffers --------------------------------------------------------------------------------------
def _dirs(d):
    """Where buffers are: the runtime's search directories ($CBUF_DIR or /dev/shm, and a hugetlbfs mount)."""
    return [Path(x) for x in _core.search_dirs(d or "")]


def _candidates(d=None):
    for folder in _dirs(d):
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        for p in entries:
            try:
                st = p.lstat()
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_size >= _core.HEADER_SIZE and not p.name.startswith("."):
                yield p, st


def _attach(path, **kw):
    try:
        return Reader(str(path), attach_timeout=0, **kw)
    except Error:
        return None


def open_buffer(name: str, command: str = "", wait: Optional[float] = None, **kw) -> Reader:
    """Attach, turning 'not found' into a message with close matches. command: a following command's name -
    it then waits for the buffer to appear (up to `wait` seconds, None: until Ctrl-C; saying so once on stderr)
    and follows producer restarts."""
    announced = False
    deadline = None if wait is None else time.monotonic() + wait
    while True:
        try:
            return Reader(name, attach_timeout=0.25 if command else 0.5, follow=bool(command), **kw)
        except NotFoundError:
            if not command or (deadline is not None and time.monotonic() >= deadline):
                names = [p.name for p, _ in _candidates()]
                close = difflib.get_close_matches(Path(name).name, names, n=3, cutoff=0.5)
                hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                raise CliError(f"no buffer {name!r}{hint} (cbuf ls lists the buffers)") from None
            if not announced:
                print(f"cbuf {command}: waiting for {name} to appear; Ctrl-C to stop", file=sys.stderr, flush=True)
                announced = True


def _restart_note(res) -> str:
    rs = res.restart
    return (f"producer restarted: epoch {rs.old_epoch} ended at row {rs.old_end}, epoch {rs.new_epoch} starts at "
            f"row {rs.new_start}" + (" with another schema" if rs.schema_changed else ""))


def _age(ns: int) -> str:
    s = max(0.0, time.time() - ns / 1e9)
    return f"{s:.0f}s" if s < 120 else f"{s / 60:.0f}m" if s < 7200 else f"{s / 3600:.0f}h"


# --- formatting -------------------------------------------------------------------------------------------
def _columns(r: Reader, spec):
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


def _types(r: Reader) -> dict:
    return {c["name"]: c["type"] for c in r.schema["columns"]}


def _fmt(value, typ: str) -> str:
    if typ.startswith("string["):
        return bytes(value).decode("utf-8", "replace")
    if typ == "timestamp_ns":
        return str(np.datetime64(int(value), "ns"))
    if isinstance(value, np.ndarray):
        return "[" + ",".join(_fmt(v, typ.split("[")[0]) for v in value) + "]"
    if isinstance(value, (np.floating, float)):
        return f"{value:.6g}"
    if isinstance(value, np.bool_):
        return "true" if value else "false"
    return str(value)


def _jsonable(value, typ: str):
    if typ.startswith("string["):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [_jsonable(v, typ.split("[")[0]) for v in value]
    if isinstance(value, np.generic):
        v = value.item()
        return None if isinstance(v, float) and not np.isfinite(v) else v
    return value


class _Table:
    def __init__(self, cols, types, out=sys.stdout, mode="table"):
        self.cols, self.types, self.out, self.mode = cols, types, out, mode
        self.widths = None

    def rows(self, first: int, rows):
        if self.mode == "json":
            for i, row in enumerate(rows):
                rec = {"row_index": first + i, **{c: _jsonable(row[c], self.types[c]) for c in self.cols}}
                print(json.dumps(rec), file=self.out)
            return
        cells = [[str(first + i)] + [_fmt(row[c], self.types[c]) for c in self.cols] for i, row in enumerate(rows)]
        if self.mode == "csv":
            w = csv.writer(self.out, lineterminator="\n")
            if self.widths is None:
                w.writerow(["row_index"] + self.cols)
                self.widths = []
            w.writerows(cells)
            return
        if self.widths is None:
            head = ["row_index"] + self.cols
            self.widths = [max([len(h)] + [len(line[k]) for line in cells]) for k, h in enumerate(head)]
            print("  ".join(h.rjust(w) for h, w in zip(head, self.widths)), file=self.out)
        for line in cells:
            print("  ".join(v.rjust(w) for v, w in zip(line, self.widths)), file=self.out)

    def note(self, text: str):
        print(f"# {text}", file=self.out)


# --- ls / info --------------------------------------------------------------------------------------------
def _describe(r: Reader, path: Path) -> dict:
    h = r.header
    return {"name": path.name, "path": str(path), "schema": r.schema_name, "state": r.state,
            "rows": r.head - h["base_index"], "head": r.head, "capacity": r.capacity, "row_size": r.row_size,
            "producer_pid": h["producer_pid"], "epoch": h["epoch"], "created_ns": h["created_ns"],
            "file_size": h["file_size"]}


# Attach errors that mean "a cbuf file, but damaged": ls lists such a file as invalid, with the reason. Other
# errors (not a cbuf file at all, unreadable, still being created) leave it out.
_INVALID_CODES = ("truncated", "unsupported_version", "corrupt_header", "bad_schema_json")


def _invalid_entry(path: Path, e: Error) -> dict:
    reason = str(e).split(": ", 2)[-1] if str(e).startswith("cbuf: ") else str(e)
    return {"name": path.name, "path": str(path), "state": "invalid", "error": reason}


def cmd_ls(args):
    found, invalid = [], []
    for path, _ in _candidates(args.dir):
        try:
            r = Reader(str(path), attach_timeout=0)
        except Error as e:
            if e.code in _INVALID_CODES:
                invalid.append(_invalid_entry(path, e))
            continue
        try:
            found.append((r, _describe(r, path)))
        except Error as e:  # truncated between attach and now
            invalid.append(_invalid_entry(path, e))
    if any(d["state"] == "live" for _, d in found):
        time.sleep(args.interval)
    for r, d in found:
        try:
            d["rate_rows_per_s"] = round((r.head - d["head"]) / args.interval, 1) if d["state"] == "live" else 0.0
        except Error:
            d["rate_rows_per_s"] = 0.0
        d["age_s"] = round(time.time() - d["created_ns"] / 1e9, 1)
        r.close()
    entries = sorted([d for _, d in found] + invalid, key=lambda d: d["path"])
    if args.json:
        print(json.dumps(entries, indent=1))
        return 0
    if not entries:
        print("no cbuf buffers in " + ", ".join(str(d) for d in _dirs(args.dir)))
        return 0
    head = ["NAME", "STATE", "SCHEMA", "ROWS", "CAPACITY", "ROW_B", "RATE/s", "AGE", "PATH"]
    lines = [[d["name"], d["state"], d["schema"], str(d["rows"]), str(d["capacity"]), str(d["row_size"]),
              f"{d['rate_rows_per_s']:.0f}", _age(d["created_ns"]), d["path"]] for d in entries if "error" not in d]
    widths = [max(len(x) for x in col) for col in zip(head, *lines)]
    for line in [head] + lines:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip())
    for d in entries:
        if "error" in d:
            print(f"{d['name']}  invalid: {d['error']}")
    idle = [d for d in entries if d["state"] in ("closed", "dead")]
    if idle:
        mib = sum(d["file_size"] for d in idle) / 2**20
        print(f"{len(idle)} closed or dead buffer(s) hold {mib:.1f} MiB of memory; "
              "cbuf gc removes the dead ones, cbuf gc --closed the closed ones too")
    return 0


def cmd_info(args):
    r = open_buffer(args.buffer)
    h = r.header
    flags = h["mem_flags"]
    memory = {**{name: bool(flags & bit) for name, bit in _core.MEM_FLAGS.items()}, "page_size": h["page_size"]}
    if args.json:
        print(json.dumps({"path": r.path, "state": r.state, "head": r.head, "header": h, "memory": memory,
                          "schema": r.schema}, indent=1))
        return 0
    print(f"{r.path}: schema {r.schema_name!r}, producer {r.state}, head {r.head}")
    print("\nheader:")
    for k, v in h.items():
        print(f"  {k:20} {v if k != 'schema_fingerprint' else f'0x{v:016x}'}")
    print("\nmemory:")
    for k, v in memory.items():
        print(f"  {k:20} {v}")
    print("\nproducer:")
    print(f"  pid {h['producer_pid']}, start time {h['producer_start_time']} ticks, epoch {h['epoch']}, "
          f"created {np.datetime64(h['created_ns'], 'ns')}" +
          (f", closed {np.datetime64(h['closed_ns'], 'ns')}" if h["closed_ns"] else ""))
    print("\nschema:")
    rows = [("COLUMN", "TYPE", "OFFSET", "SIZE", "UNIT", "DOC")]
    for c in r.schema["columns"]:
        rows.append((c["name"], c["type"], str(c["offset"]), str(r.dtype.fields[c["name"]][0].itemsize),
                     str(c.get("unit", "")), " ".join(str(c.get("doc", "")).split())))
    widths = [max(len(x) for x in col) for col in zip(*rows)]
    for line in rows:
        print("  " + "  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip())
    return 0


# --- tail / stat ------------------------------------------------------------------------------------------
def cmd_tail(args):
    following = args.follow and not args.until_closed
    r = open_buffer(args.buffer, "tail" if following else "", args.wait)
    cols = _columns(r, args.columns)
    mode = "json" if args.json else "csv" if args.csv else "table"
    table = _Table(cols, _types(r), mode=mode)
    shown = r.last_indexed(max(0, args.n))
    table.rows(shown.first, shown.rows)
    if not args.follow:
        return 0
    r.seek(shown.first + len(shown.rows) if args.n > 0 else r.head)
    while True:
        res = r.read_new(max=1024)
        if res.restart:
            table.note(_restart_note(res))
            missing = [c for c in cols if c not in r.dtype.names]
            if missing:
                raise CliError(f"{r.path}: the restarted producer's schema has no column {missing[0]!r}; "
                               f"the columns are now {', '.join(r.dtype.names)}")
            table = _Table(cols, _types(r), mode=mode)
            continue
        if res.lost:
            table.note(f"lost {res.lost} rows ({res.lost_range.start}..{res.lost_range.stop - 1}): "
                       "the producer overwrote them before they were read")
        if len(res.rows):
            table.rows(res.first, res.rows)
            sys.stdout.flush()
            continue
        if r.finished:  # --until-closed; a following reader waits for the next producer instead
            table.note(f"producer {r.state}; {r.head} rows written")
            return 0
        r.wait(0.25)


def cmd_stat(args):
    r = open_buffer(args.buffer, "stat", args.wait, start="end")
    tty = sys.stdout.isatty()
    n = 0
    last_head, last_t = r.head, time.monotonic()
    while args.count is None or n < args.count:
        deadline = last_t + args.interval
        lost = 0
        while time.monotonic() < deadline:  # follow like a reader would, counting what it loses
            res = r.read_new()
            lost += res.lost
            if res.restart:
                print(("\r" if tty else "") + _restart_note(res), flush=True)
                last_head = res.restart.new_start
            elif not len(res.rows):
                r.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        now, head = time.monotonic(), r.head
        rate = (head - last_head) / (now - last_t)
        line = (f"{rate:12.0f} rows/s  {rate * r.row_size / 1e6:9.2f} MB/s  lost {lost:8d}  head {head}  "
                f"producer {r.state}")
        print(("\r" + line) if tty else line, end="" if tty else "\n", flush=True)
        last_head, last_t = head, now
        n += 1
    if tty:
        print()
    return 0


# --- record / replay --------------------------------------------------------------------------------------
def _record_loop(r: Reader, args, tty: bool, chunks: list, lost_ranges: list, restarts: list, t0: float,
                 deadline) -> None:
    """Reads into chunks (ReadResults) until --rows or --duration, following producer restarts of the same
    schema (noted in restarts); a restart into another schema ends the recording."""
    got = lost = 0
    while (args.rows is None or got < args.rows) and (deadline is None or time.monotonic() < deadline):
        want = r.capacity if args.rows is None else min(r.capacity, args.rows - got)
        res = r.read_new(max=want)
        if res.restart:
            if res.restart.schema_changed:
                print(f"cbuf record: {_restart_note(res)}; the recording ends with epoch {res.restart.old_epoch}",
                      file=sys.stderr)
                return
            restarts.append({**res.restart._asdict(), "at_row": got})
            continue
        if res.lost:
            lost += res.lost
            lost_ranges.append([res.lost_range.start, res.lost_range.stop])
        if len(res.rows):
            chunks.append(res)
            got += len(res.rows)
        elif args.until_closed and r.drained:
            return
        else:
            r.wait(0.1)
        if tty:
            print(f"\rrecording {r.path}: {got} rows, {lost} lost, {time.monotonic() - t0:.1f} s", end="",
                  file=sys.stderr, flush=True)


def cmd_record(args):
    out = Path(args.output)
    recording.check_writable(out, args.force)
    r = open_buffer(args.buffer, "record", args.wait, start="oldest" if args.from_oldest else "end")
    tty = sys.stderr.isatty()
    chunks, lost_ranges, restarts = [], [], []
    t0 = time.monotonic()
    deadline = t0 + args.duration if args.duration is not None else None
    try:
        _record_loop(r, args, tty, chunks, lost_ranges, restarts, t0, deadline)
    except KeyboardInterrupt:  # Ctrl-C ends the recording; what was read is written out below
        pass
    if tty:
        print(file=sys.stderr)
    got = sum(len(c.rows) for c in chunks)
    lost = sum(b - a for a, b in lost_ranges)
    first = chunks[0].first if chunks else 0
    data = np.empty(got, dtype=r.dtype)  # the row layout, padding included (np.concatenate would pack it)
    at = 0
    for c in chunks:
        data[at:at + len(c.rows)] = c.rows
        at += len(c.rows)
    meta = recording.make_meta(r.path, r.schema, r.fingerprint, r.row_size, first, got, lost, lost_ranges,
                               restarts)
    recording.save(out, data, meta)
    print(f"recorded {got} rows to {out}" + (f" (indices {first}..{first + got - 1})" if got else "") +
          f"; lost {lost} rows while recording", file=sys.stderr)
    return 0


def cmd_replay(args):
    rec = recording.load(Path(args.file))  # the whole recording is checked before anything is created
    meta, schema = rec.meta, rec.schema
    name = args.name or (schema.get("name") if isinstance(schema.get("name"), str) else "") or Path(args.file).stem
    kept = schema.get("capacity")
    capacity = args.capacity or max(kept if isinstance(kept, int) else 0, len(rec.data), 1)
    p = _core.Producer(name, meta["row_size"], capacity, meta["schema_json"], meta["fingerprint"],
                       replace=not args.no_replace, replace_hint="drop --no-replace")
    print(p.path, flush=True)
    data = rec.data
    ts_cols = [c.name for c in rec.columns if c.type == "timestamp_ns"]
    rows = np.ascontiguousarray(data)
    if args.as_fast_as_possible or not ts_cols or len(rows) == 0:
        for start in range(0, len(rows), 4096):
            p.write(rows[start:start + 4096])
    else:
        ts = rows[ts_cols[0]].astype(np.int64)
        t0_wall, t0 = time.monotonic(), int(ts[0])
        i = 0
        while i < len(rows):
            due = t0_wall + (int(ts[i]) - t0) / 1e9 / args.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            j = i + 1
            while j < len(rows) and t0_wall + (int(ts[j]) - t0) / 1e9 / args.rate <= time.monotonic():
                j += 1
            p.write(rows[i:j])
            i = j
    p.close()
    print(f"replayed {len(rows)} rows into {p.path}", file=sys.stderr)
    return 0


# --- plot / gc --------------------------------------------------------------------------------------------
def cmd_plot(args):
    try:
        import matplotlib
        if args.save:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CliError("plotting needs matplotlib (pip install matplotlib)") from None
    r = open_buffer(args.buffer, "plot" if not args.save else "", args.wait)
    types = _types(r)
    numeric = [c for c in r.dtype.names if not types[c].startswith("string[") and types[c] != "timestamp_ns"]
    cols = _columns(r, args.columns) if args.columns else numeric
    for c in cols:
        if c not in numeric:
            raise CliError(f"column {c!r} is not numeric; plot one of {', '.join(numeric)}")
    ts_col = next((c for c in r.dtype.names if types[c] == "timestamp_ns"), None)
    # One subplot per unit (columns of one unit share an axis), and one per column without a unit: a
    # quaternion and a counter never squash each other. The unit labels the y axis.
    units = {c["name"]: c.get("unit", "") for c in r.schema["columns"]}
    groups = {}
    for c in cols:
        groups.setdefault(units.get(c) or f"column {c}", []).append(c)
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, 2.2 + 1.8 * len(groups)), dpi=100, sharex=True,
                             squeeze=False)
    axes = [a[0] for a in axes]
    palette = plt.get_cmap("tab20").colors  # 20 distinct colours, then line styles tell lines apart
    styles = ("-", "--", ":", "-.")

    def draw():
        if r.follow and r.state != "live":  # the producer is gone: move to its successor, if there is one
            r.seek(r.head)
            if r.read_new(max=1).restart and any(c not in r.dtype.names for c in cols):
                raise CliError(f"{r.path}: the restarted producer's schema has other columns: "
                               f"{', '.join(r.dtype.names)}")
        res = r.last_indexed(r.capacity)
        rows = res.rows
        x, label = None, "row index"
        if len(rows):
            if ts_col:
                t = (rows[ts_col].astype(np.int64) - int(rows[ts_col][-1])) / 1e9
                keep = t >= -args.window
                rows, x, label = rows[keep], t[keep], "seconds (0 = newest row)"
            else:
                x = np.arange(res.first, res.first + len(rows))
        for ax, (unit, members) in zip(axes, groups.items()):
            ax.clear()
            n = 0
            for c in members:
                y = rows[c] if x is not None else None
                series = [(c, None)] if y is None or y.ndim == 1 else [(f"{c}[{j}]", j) for j in range(y.shape[1])]
                for name, j in series:
                    if y is not None:
                        ax.plot(x, y if j is None else y[:, j], label=name, color=palette[n % 20],
                                linestyle=styles[(n // 20) % 4], linewidth=1)
                    n += 1
            ax.set_ylabel(unit if not unit.startswith("column ") else members[0])
            ax.grid(True, alpha=0.3)
            if x is not None:
                ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False,
                          ncol=1 + n // 12)
        axes[-1].set_xlabel(label)
        axes[0].set_title(f"{r.path} ({r.state})")
        fig.tight_layout()

    if args.save:
        draw()
        fig.savefig(args.save)
        print(f"saved {args.save}", file=sys.stderr)
        return 0
    from matplotlib.animation import FuncAnimation
    anim = FuncAnimation(fig, lambda _: draw(), interval=200, cache_frame_data=False)  # noqa: F841
    plt.show()
    return 0


def cmd_gc(args):
    me = os.geteuid()
    removed = 0
    for path, st in _candidates(args.dir):
        if st.st_uid != me:
            continue  # never someone else's file
        r = _attach(path)
        if r is None:
            continue  # not a cbuf buffer
        state, h, schema = r.state, r.header, r.schema_name
        pid = h["producer_pid"]
        r.close()
        if state not in (("dead", "closed") if args.closed else ("dead",)):
            continue
        since_ns = h["closed_ns"] if state == "closed" else h["created_ns"]
        if args.older_than is not None and time.time() - since_ns / 1e9 < args.older_than:
            continue
        # The runtime removes it only if no producer holds its lock and the name still holds the same file.
        if _core.unlink_if_unheld(str(path), st.st_dev, st.st_ino, args.dry_run):
            removed += 1
            print(f"{'would remove' if args.dry_run else 'removed'} {path} ({state} producer pid {pid}, "
                  f"schema {schema!r})")
    if removed == 0:
        print("nothing to remove: no buffer with a dead producer" + (" or a closed one" if args.closed else ""))
    return 0
