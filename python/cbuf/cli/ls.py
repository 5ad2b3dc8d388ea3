"""cbuf ls: every buffer in the search directories, with its producer's state, rows, rate and age."""
import json
import time
from pathlib import Path

from ..errors import Error
from ..reader import Reader
from .args import POSITIVE_SECONDS
from .._search import candidates, search_dirs
from .present import Table, age

# Attach errors that mean "a cbuf file, but damaged": ls lists such a file as invalid, with the reason. Other
# errors (not a cbuf file at all, unreadable, still being created) leave it out.
_INVALID_CODES = ("truncated", "unsupported_version", "corrupt_header", "bad_schema_json")


def add(sub) -> None:
    s = sub.add_parser("ls", help="list buffers: name, producer state, rows, rate, age")
    s.add_argument("dir", nargs="?", help="directory (default: $CBUF_DIR or /dev/shm, plus a hugetlbfs mount)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--interval", type=POSITIVE_SECONDS, default=0.2,
                   help="seconds over which write rates are measured")
    s.set_defaults(func=run)


def _describe(r: Reader, path: Path) -> dict:
    h = r.header
    return {"name": path.name, "path": str(path), "schema": r.schema_name, "state": r.state,
            "rows": r.head - h["base_index"], "head": r.head, "capacity": r.capacity, "row_size": r.row_size,
            "producer_pid": h["producer_pid"], "epoch": h["epoch"], "created_ns": h["created_ns"],
            "file_size": h["file_size"]}


def _invalid(path: Path, e: Error) -> dict:
    reason = str(e).split(": ", 2)[-1] if str(e).startswith("cbuf: ") else str(e)
    return {"name": path.name, "path": str(path), "state": "invalid", "error": reason}


def run(args) -> int:
    found, invalid = [], []
    for path, _ in candidates(args.dir):
        try:
            r = Reader(str(path), attach_timeout=0)
        except Error as e:
            if e.code in _INVALID_CODES:
                invalid.append(_invalid(path, e))
            continue
        try:
            found.append((r, _describe(r, path)))
        except Error as e:  # truncated between attach and now
            invalid.append(_invalid(path, e))
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
        print("no cbuf buffers in " + ", ".join(str(d) for d in search_dirs(args.dir)))
        return 0
    Table(["NAME", "STATE", "SCHEMA", "ROWS", "CAPACITY", "ROW_B", "RATE/s", "AGE", "PATH"]).add(
        [d["name"], d["state"], d["schema"], d["rows"], d["capacity"], d["row_size"], f"{d['rate_rows_per_s']:.0f}",
         age(d["created_ns"]), d["path"]] for d in entries if "error" not in d)
    for d in entries:
        if "error" in d:
            print(f"{d['name']}  invalid: {d['error']}")
    idle = [d for d in entries if d["state"] in ("closed", "dead")]
    if idle:
        mib = sum(d["file_size"] for d in idle) / 2**20
        print(f"{len(idle)} closed or dead buffer(s) hold {mib:.1f} MiB of memory; "
              "cbuf gc removes the dead ones, cbuf gc --closed the closed ones too")
    return 0
