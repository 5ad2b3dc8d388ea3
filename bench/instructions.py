"""Instruction counts per written and per read row, from valgrind --tool=callgrind on fixed workloads
(bench/instr.cpp): a regression check that does not depend on timing, so it is stable on noisy machines.

    ./dev.sh instructions                       build cbuf_instr, count, compare with the recorded figures
    .venv/bin/python bench/instructions.py --bin build-bench/bench/cbuf_instr [--update]

Counts are collected only inside the cbuf_instr_* functions (the rows' loop), divided by the rows handled.
The recorded figures are in bench/instructions.json with the compiler that produced them; a different
compiler gives different counts, and the report says so. It reports; it never fails on a change (exit 0),
only when it cannot measure (exit 1).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
BASELINE = os.path.join(HERE, "instructions.json")
WORKLOADS = {  # workload -> (collected function, what it measures)
    "write64": ("cbuf_instr_write", "write one 64-byte row"),
    "wbatch64": ("cbuf_instr_write_batch", "write_batch, per 64-byte row (4096-row batches)"),
    "next64": ("cbuf_instr_next", "try_next one 64-byte row"),
    "batch64": ("cbuf_instr_batch", "read_new, per 64-byte row (4096-row batches)"),
    "write1k": ("cbuf_instr_write", "write one 1 KiB row"),
    "next1k": ("cbuf_instr_next", "try_next one 1 KiB row"),
    "write4k": ("cbuf_instr_write", "write one 4 KiB row"),
    "next4k": ("cbuf_instr_next", "try_next one 4 KiB row"),
}
# No 64 KiB workload: glibc copies that much with `rep movsb`, which callgrind counts once per byte moved, so the
# figure (about 65600 per row) would measure valgrind, not the code. The benchmarks time 64 KiB rows instead.
NOTICE = 0.02  # report changes above 2% as such


def count(binary, workload):
    """Instructions per row for one workload."""
    func = WORKLOADS[workload][0]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        p = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--collect-atstart=no",
                            f"--toggle-collect={func}", binary, workload], capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"{workload}: {binary} under callgrind failed ({p.returncode}): {p.stderr[-500:]}")
        rows = int(re.search(r"^rows (\d+)$", p.stdout, re.M).group(1))
        with open(out) as f:
            text = f.read()
        m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        if not m or int(m.group(1)) == 0:
            raise RuntimeError(f"{workload}: no instructions collected in {func} (was it inlined away?)")
        return int(m.group(1)) / rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="the cbuf_instr program")
    ap.add_argument("--baseline", default=BASELINE)
    ap.add_argument("--update", action="store_true", help="record these counts as the new baseline")
    args = ap.parse_args()
    if not shutil.which("valgrind"):
        print("instructions: valgrind is not installed (./dev.sh bench-deps installs it)", file=sys.stderr)
        return 1
    compiler = subprocess.run([args.bin, "--compiler"], capture_output=True, text=True, check=True).stdout.strip()
    now = {w: count(args.bin, w) for w in WORKLOADS}
    base = {}
    if os.path.exists(args.baseline):
        with open(args.baseline) as f:
            base = json.load(f)
    recorded = base.get("per_row", {})
    print(f"instructions per row (callgrind), built with {compiler}")
    if base and base.get("compiler") != compiler:
        print(f"note: the recorded counts were made with {base.get('compiler')}; differences may come from the "
              "compiler, not the code")
    print(f"{'workload':<10} {'measures':<46} {'now':>9} {'recorded':>9} {'change':>8}")
    for w, per_row in now.items():
        old = recorded.get(w)
        change = "" if old is None else f"{(per_row - old) / old:+.1%}"
        flag = "" if old is None or abs(per_row - old) <= NOTICE * old else ("  higher" if per_row > old else "  lower")
        print(f"{w:<10} {WORKLOADS[w][1]:<46} {per_row:9.1f} {old if old is not None else '-':>9} {change:>8}{flag}")
    if args.update:
        with open(args.baseline, "w") as f:
            json.dump({"compiler": compiler, "per_row": {w: round(v, 1) for w, v in now.items()}}, f, indent=1)
            f.write("\n")
        print(f"recorded in {args.baseline}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
