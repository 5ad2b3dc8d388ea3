"""bench/instructions.py: counts instructions per row under callgrind and reports changes against the
recorded figures, without ever failing on a change."""
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.environ.get("CBUF_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SCRIPT = os.path.join(ROOT, "bench", "instructions.py")


@pytest.fixture
def instr_bin(test_bin):
    if not shutil.which("valgrind"):
        pytest.skip("valgrind is not installed (./dev.sh installs it)")
    return os.path.join(test_bin, "cbuf_instr")


def run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=300)


def test_counts_are_recorded_then_compared(instr_bin, tmp_path):
    baseline = tmp_path / "instructions.json"
    p = run("--bin", instr_bin, "--baseline", str(baseline), "--update")
    assert p.returncode == 0, p.stderr
    rec = json.loads(baseline.read_text())
    per_row = rec["per_row"]
    assert set(per_row) == {"write64", "wbatch64", "next64", "batch64", "write1k", "next1k", "write4k", "next4k"}
    # Plausible magnitudes: a row costs tens of instructions, and a larger row more than a smaller one.
    assert all(10 < v < 20000 for v in per_row.values())
    assert per_row["write64"] < per_row["write1k"] < per_row["write4k"]
    assert per_row["next64"] < per_row["next1k"] < per_row["next4k"]
    assert rec["compiler"].startswith(("gcc", "clang"))

    # Halve the recorded write64 figure: the report shows the change but still exits 0 (report only).
    rec["per_row"]["write64"] = per_row["write64"] / 2
    rec["compiler"] = "some other compiler"
    baseline.write_text(json.dumps(rec))
    p = run("--bin", instr_bin, "--baseline", str(baseline))
    assert p.returncode == 0, p.stderr
    line = next(x for x in p.stdout.splitlines() if x.startswith("write64"))
    assert "+100" in line and "higher" in line
    assert "some other compiler" in p.stdout
    assert "higher" not in next(x for x in p.stdout.splitlines() if x.startswith("next64"))


def test_the_recorded_figures_cover_every_workload():
    with open(os.path.join(ROOT, "bench", "instructions.json")) as f:
        rec = json.load(f)
    assert set(rec["per_row"]) == {"write64", "wbatch64", "next64", "batch64", "write1k", "next1k", "write4k", "next4k"}
