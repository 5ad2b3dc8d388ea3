"""cbuf info: the whole header, memory settings, the producer's identity and the schema as a table."""
import json

import numpy as np

from .. import _core
from .find import open_buffer
from .present import Table


def add(sub) -> None:
    s = sub.add_parser("info", help="the whole header, the schema as a table, memory settings, producer identity")
    s.add_argument("buffer", help="name or path")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=run)


def run(args) -> int:
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
    Table(["COLUMN", "TYPE", "OFFSET", "SIZE", "UNIT", "DOC"], indent="  ").add(
        [c["name"], c["type"], c["offset"], r.dtype.fields[c["name"]][0].itemsize, c.get("unit", ""),
         " ".join(str(c.get("doc", "")).split())] for c in r.schema["columns"])
    return 0
