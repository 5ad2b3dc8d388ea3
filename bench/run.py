"""Runs every benchmark (C++ and Python) in one go and prints one table: every figure beside the baseline or
peer it was measured against in the same run, then the targets, each marked met or MISSED.

    ./dev.sh bench [--rounds R] [--quick] [--json FILE]      (builds first; this is what it runs)
    .venv/bin/python bench/run.py --build build-bench [--rounds R] [--quick] [--json FILE]
    .venv/bin/python bench/run.py --report FILE.json          (the table again, from a saved run)

The raw numbers go to FILE (default bench/results/bench-<UTC time>.json): {"machine": ..., "records": [...]},
one record per measured line, as the benchmark programs print them.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Spin-latency targets: cbuf's p50 at least this many times lower than each peer's (records' "peer_id").
SPIN_TARGETS = {"iceoryx": 5, "zeromq": 20, "uds": 20, "boost_mq": 20}


def run(cmd, env=None):
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def measure(args):
    with tempfile.TemporaryDirectory() as tmp:
        cpp_json, py_json = os.path.join(tmp, "cpp.jsonl"), os.path.join(tmp, "py.jsonl")
        common = ["--quick"] if args.quick else ["--rounds", str(args.rounds)]
        run([os.path.join(args.build, "bench", "cbuf_bench"), *common, "--json", cpp_json])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(args.build, "python"),
                                                            os.path.join(ROOT, "codegen")]))
        run([sys.executable, os.path.join(HERE, "bench_python.py"), *common, "--json", py_json], env=env)
        records = read_jsonl(cpp_json) + read_jsonl(py_json)
    machine = next((r for r in records if r.get("bench") == "machine"), {})
    return {"machine": machine, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "records": [r for r in records if r.get("bench") != "machine"]}


def fmt_range(r, key="ratio"):
    return f"{r[key + '_median']:.2f} [{r[key + '_min']:.2f}-{r[key + '_max']:.2f}]"


def table(run_data):
    """The one table: (measurement, size, what, figures, compared with, ratio median [min-max])."""
    rows = []
    for r in run_data["records"]:
        b = r["bench"]
        if "skipped" in r:
            rows.append((b, "", r.get("peer", r.get("format", "")), "skipped: " + r["skipped"], "", ""))
        elif b == "protocol":
            rows.append(("protocol cost", f"{r['ring']} ring", f"cbuf, {r['consumers']} consumer(s)",
                         f"{r['cbuf_rows_per_s']:.3g} rows/s", "memcpy into the same slots", fmt_range(r)))
        elif b == "large_rows":
            lost = f" lost {r['cbuf_lost_pct']:.1f}% / {r['baseline_lost_pct']:.1f}%" if "cbuf_lost_pct" in r else ""
            rows.append((f"large rows, {r['what']}", f"{r['bytes']} B", "cbuf",
                         f"{r['cbuf_rows_per_s']:.3g} rows/s {r['cbuf_rows_per_s'] * r['bytes'] / 1e9:.2f} GB/s{lost}",
                         r["baseline"], fmt_range(r)))
        elif b == "peer_latency":
            rows.append((f"latency {r['mode']}", f"{r['bytes']} B", r["peer"],
                         f"p50 {r['p50_ns']:.0f} p99 {r['p99_ns']:.0f} p99.9 {r['p999_ns']:.0f} ns",
                         "p50 / " + r["ratio_to"] + " p50", fmt_range(r)))
        elif b == "peer_throughput":
            rows.append(("throughput", f"{r['bytes']} B", r["peer"],
                         f"{r['msgs_per_s']:.3g} msg/s {r['gb_per_s']:.2f} GB/s lost {r['lost_pct']:.1f}%",
                         "cbuf / this", fmt_range(r, "cbuf_ratio")))
        elif b == "python_snapshot":
            ice = f" iceoryx2 {r['iceoryx2_us']:.1f}" if r.get("iceoryx2_us") is not None else ""
            rows.append(("python snapshot", f"{r['rows']} rows", "cbuf last(n)",
                         f"{r['cbuf_last_us']:.1f} us (copyto {r['copyto_us']:.1f} shm {r['shm_unsafe_us']:.1f}{ice})",
                         "np.copyto time / cbuf time", fmt_range(r)))
        elif b == "fanout":
            rows.append((f"fan-out, {r['ring']} ring", f"{r['row_bytes']} B",
                         f"{r['readers']} readers, {r['mode']}", f"{r['rows_per_s']:.3g} rows/s",
                         f"{r['readers']} x {r.get('control', 'copier')} ({r['control_rows_per_s']:.3g})",
                         fmt_range(r)))
        elif b == "fanout_latency":
            rows.append(("fan-out latency", f"{r['row_bytes']} B", "1 reader + 15 readers",
                         f"p50 {r['with15_p50_ns']:.0f} p99 {r['with15_p99_ns']:.0f} ns",
                         f"p99 beside 15 idlers ({r['alone_p99_ns']:.0f})",
                         fmt_range(r, "p99_ratio")))
        elif b == "bridge":
            rows.append(("bridge over Zenoh", f"{r['row_bytes']} B", "cbuf bridge pub -> subscribe()",
                         f"{r['rows_per_s']:.3g} rows/s {r['mb_per_s']:.0f} MB/s",
                         f"plain Zenoh ({r['zenoh_rows_per_s']:.3g})", fmt_range(r)))
        elif b == "bridge_latency":
            rows.append(("bridge latency", "64 B", r["peer"], f"p50 {r['p50_ns'] / 1e3:.0f} p99 {r['p99_ns'] / 1e3:.0f} us",
                         "", ""))
        elif b == "recording":
            what = f"cbuf record -o FILE{r['format']}"
            if "skipped" in r:
                rows.append(("recording", f"{r['row_bytes']} B", what, "skipped: " + r["skipped"], "", ""))
            else:
                base = r.get("baseline_rows_per_s")
                rows.append(("recording", f"{r['row_bytes']} B", what,
                             f"sustained {r['rows_per_s']:.3g} rows/s [{r['min']:.3g}-{r['max']:.3g}], writer alone "
                             f"{r['alone_rows_per_s']:.3g}" + (f" (before: sustained {base:.3g})" if base else ""),
                             f"writer before issue 30 ({r['baseline_alone_rows_per_s']:.3g})"
                             if "ratio_median" in r else r.get("baseline_skipped", ""),
                             fmt_range(r) if "ratio_median" in r else ""))
        elif b == "python_latency":
            rows.append(("python latency", "64 B", r["peer"],
                         f"p50 {r['p50_ns']:.0f} p99 {r['p99_ns']:.0f} p99.9 {r['p999_ns']:.0f} ns",
                         "p50 / cbuf p50", fmt_range(r)))
    head = ("measurement", "size", "what", "figures", "compared with", "ratio median [min-max]")
    widths = [max(len(str(x[i])) for x in rows + [head]) for i in range(len(head))]
    line = "  ".join("{:<%d}" % w for w in widths)
    out = [line.format(*head), line.format(*("-" * w for w in widths))]
    out += [line.format(*x) for x in rows]
    return "\n".join(out)


def targets(run_data):
    """[(target, measured, met)] for the goals of the peer benchmarks (README explains each miss)."""
    recs = run_data["records"]
    lat = {(r["mode"], r["bytes"], r["peer_id"]): r for r in recs
           if r["bench"] == "peer_latency" and "skipped" not in r}
    thr = {(r["bytes"], r["peer_id"]): r for r in recs if r["bench"] == "peer_throughput" and "skipped" not in r}
    out = []
    for (mode, size, peer), r in sorted(lat.items()):
        if mode == "spin" and peer == "cbuf":
            floor = lat.get((mode, size, "floor_spin"))
            if floor and size in (64, 1024):
                out.append((f"spin {size} B: cbuf p50 within 1.2x of the cache-line floor",
                            f"{r['ratio_median']:.2f}x", r["ratio_median"] <= 1.2))
        elif mode == "spin" and peer in SPIN_TARGETS:
            need = SPIN_TARGETS[peer]
            out.append((f"spin {size} B: cbuf p50 >= {need}x lower than {r['peer']}", f"{r['ratio_median']:.1f}x",
                        r["ratio_median"] >= need))
        elif mode == "block" and peer == "cbuf":
            floor, uds = lat.get((mode, size, "floor_futex")), lat.get((mode, size, "uds"))
            if floor:
                out.append((f"block {size} B: cbuf p50 within 1.2x of the raw futex floor",
                            f"{r['ratio_median']:.2f}x", r["ratio_median"] <= 1.2))
            if uds:
                out.append((f"block {size} B: cbuf p50 no worse than a Unix domain socket's",
                            f"{r['p50_ns']:.0f} vs {uds['p50_ns']:.0f} ns", r["p50_ns"] <= uds["p50_ns"]))
    for (size, peer), r in sorted(thr.items()):
        if peer != "cbuf" and not r.get("ceiling"):
            out.append((f"throughput {size} B: cbuf higher than {r['peer']}", f"{r['cbuf_ratio_median']:.1f}x",
                        r["cbuf_ratio_median"] > 1))
    for r in recs:
        if r["bench"] == "fanout" and r["readers"] > 0:
            need = 0.9 if r["ring"] == "64MiB" else 0.8
            out.append((f"fan-out {r['row_bytes']} B, {r['ring']}, {r['readers']} {r['mode']} readers: "
                        f">= {need}x {r.get('control', 'copier')}s", f"{r['ratio_median']:.2f}x",
                        r["ratio_median"] >= need))
            if "paced_fraction" in r and r["mode"] != "blocking":
                out.append((f"fan-out {r['row_bytes']} B, {r['ring']}, {r['readers']} {r['mode']} readers: "
                            "> 90% of catch-ups paced", f"{100 * r['paced_fraction']:.0f}%", r["paced_fraction"] > 0.9))
        if r["bench"] == "fanout_latency":
            out.append((f"fan-out latency {r['row_bytes']} B: p99 with 15 readers <= 2x p99 beside 15 idlers",
                        f"{r['p99_ratio_median']:.2f}x", r["p99_ratio_median"] <= 2))
            if "paced_fraction_max" in r:
                out.append((f"fan-out latency {r['row_bytes']} B: the latency reader is never paced",
                            f"{100 * r['paced_fraction_max']:.1f}%", r["paced_fraction_max"] == 0))
    for r in recs:
        if r["bench"] == "bridge" and "skipped" not in r:
            out.append((f"bridge {r['row_bytes']} B: >= 0.8x plain Zenoh", f"{r['ratio_median']:.2f}x",
                        r["ratio_median"] >= 0.8))
    for r in recs:
        if r["bench"] == "large_rows":
            need = 0.9 if r["what"] == "writer" else 0.8
            what = ("writer: cbuf >= 0.9x memcpy between fences" if r["what"] == "writer"
                    else "streaming: cbuf >= 0.8x the unvalidated cross-core floor")
            out.append((f"{r['bytes']} B {what}", f"{r['ratio_median']:.2f}x", r["ratio_median"] >= need))
    for r in recs:
        if r["bench"] == "recording" and "ratio_median" in r:
            out.append((f"recording {r['format']} {r['row_bytes']} B: writer >= {r['target_ratio']:g}x the one before "
                        "issue 30", f"{r['ratio_median']:.2f}x", r["ratio_median"] >= r["target_ratio"]))
    for r in recs:
        if r["bench"] == "python_snapshot" and "skipped" not in r:
            out.append((f"python snapshot {r['rows']} rows: >= 0.8x np.copyto", f"{r['ratio_median']:.2f}x",
                        r["ratio_median"] >= 0.8))
            if r.get("iceoryx2_ratio_median") is not None:
                out.append((f"python snapshot {r['rows']} rows: faster than iceoryx2",
                            f"{r['iceoryx2_ratio_median']:.2f}x", r["iceoryx2_ratio_median"] > 1))
    return out


def report(run_data):
    m = run_data.get("machine", {})
    print(f"\n== cbuf benchmarks, {run_data.get('date', '')}: CPU {m.get('cpu', '?')}, {m.get('cpus', '?')} CPUs, "
          f"{m.get('rounds', '?')} alternating rounds{' (quick)' if m.get('quick') else ''}")
    print(table(run_data))
    t = targets(run_data)
    print(f"\n== Targets: {sum(ok for _, _, ok in t)} of {len(t)} met (README explains the misses)")
    w = max((len(x[0]) for x in t), default=10)
    for name, measured, ok in t:
        print(f"{name:<{w}}  {measured:>22}  {'met' if ok else 'MISSED'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="fewer messages and 3 rounds: a smoke run")
    ap.add_argument("--json", help="where to write the raw numbers (default bench/results/bench-<time>.json)")
    ap.add_argument("--report", metavar="FILE", help="print the table of a saved run instead of measuring")
    args = ap.parse_args()
    if args.report:
        with open(args.report) as f:
            report(json.load(f))
        return
    data = measure(args)
    path = args.json or os.path.join(HERE, "results",
                                     "bench-" + datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
                                     + ".json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
    report(data)
    print(f"\nraw numbers: {path}")


if __name__ == "__main__":
    main()
