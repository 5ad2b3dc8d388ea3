"""docs/across-machines.md's Python example, run by tests/python/test_bridge.py against a live bridge:
prints the first index and row count of each batch (and any lost range), and stops after `limit` rows.

    python3 bridge_subscribe.py KEY ENDPOINT LIMIT
"""
import sys

import cbuf.bridge

key, endpoint, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
seen = 0


def process(first, rows):
    global seen
    print(first, len(rows), int(rows["index"][0]) if len(rows) else -1, flush=True)
    seen += len(rows)
    if seen >= limit:
        sys.exit(0)


with cbuf.bridge.subscribe(key, connect=[endpoint]) as sub:     # "lab/daq", "tcp/10.0.0.5:7447"
    print("subscribed", flush=True)
    for b in sub:                          # Batch(rows, first, lost, lost_range, epoch, restart, sent_ns, ended)
        if b.lost:
            print("lost rows", b.lost_range)
        process(b.first, b.rows)           # a NumPy structured array, the buffer's dtype
