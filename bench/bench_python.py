"""Python snapshot benchmark: Reader.last(n) and Reader.rows(a, b) against np.copyto of the same row bytes from
the same mapping, measured in the same run, alternating rounds; 64-byte rows, n = 64 .. 262144.

    PYTHONPATH=build/python:codegen .venv/bin/python bench/bench_python.py [--rounds R] [--json FILE]

np.copyto reads the rows through the zero-copy view (no validation, no allocation: the fastest unsafe copy);
cbuf copies with a sequence-word check per row into a fresh array. Ratio = copyto time / cbuf time (higher is
better; target >= 0.8 for n >= 4096).
"""
import argparse
import json
import os
import statistics
import time

import numpy as np

import cbuf
from cbuf import _core

SIZES = (64, 256, 1024, 4096, 16384, 65536, 262144)


def timeit(fn, min_time=0.05):
    """Seconds per call: the best of a few batches of calls lasting at least min_time each."""
    calls, best = 1, float("inf")
    while True:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time:
            break
        calls *= 2
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json")
    args = ap.parse_args()
    cap = max(SIZES)
    name = f"/dev/shm/cbuf_bench_py_{os.getpid()}"
    schema = json.dumps({"name": "bench", "capacity": cap, "row_size": 64,
                         "columns": [{"name": "w", "type": "uint64[8]", "offset": 0}]})
    p = _core.Producer(name, 64, cap, schema, 0, keep=False)
    rows = np.arange(cap * 8, dtype=np.uint64)
    p.write(rows)
    r = cbuf.open(name)
    view = r.view()  # zero-copy rows, stride 72 (slot) - the same bytes cbuf copies
    results = []
    print(f"{'rows':>8} {'cbuf last(n) us':>16} {'rows(a,b) us':>14} {'np.copyto us':>13}  "
          f"{'last ratio median [min-max]':>28}  {'rows ratio':>10}")
    for n in SIZES:
        dst = np.empty(n, dtype=r.dtype)
        src = view[cap - n:]
        head = r.head
        ratios_last, ratios_rows, t_last, t_rows, t_copy = [], [], [], [], []
        for _ in range(args.rounds):
            tc = timeit(lambda: np.copyto(dst, src))
            tl = timeit(lambda: r.last(n))
            tr = timeit(lambda: r.rows(head - n, head))
            t_copy.append(tc)
            t_last.append(tl)
            t_rows.append(tr)
            ratios_last.append(tc / tl)
            ratios_rows.append(tc / tr)
        med = statistics.median
        rec = {"bench": "python_snapshot", "rows": n, "row_bytes": 64, "cbuf_last_us": med(t_last) * 1e6,
               "cbuf_rows_us": med(t_rows) * 1e6, "copyto_us": med(t_copy) * 1e6,
               "last_ratio_median": med(ratios_last), "last_ratio_min": min(ratios_last),
               "last_ratio_max": max(ratios_last), "rows_ratio_median": med(ratios_rows), "rounds": args.rounds}
        results.append(rec)
        print(f"{n:8d} {rec['cbuf_last_us']:16.1f} {rec['cbuf_rows_us']:14.1f} {rec['copyto_us']:13.1f}  "
              f"{rec['last_ratio_median']:10.2f} [{rec['last_ratio_min']:.2f}-{rec['last_ratio_max']:.2f}]  "
              f"{rec['rows_ratio_median']:10.2f}")
    r.close()
    p.close()
    for rec in results:
        print(json.dumps(rec))
    if args.json:
        with open(args.json, "w") as f:
            f.writelines(json.dumps(rec) + "\n" for rec in results)


if __name__ == "__main__":
    main()
