"""Recording at stream speed (issue 30): the rows per second `cbuf record` sustains with zero loss against a
producer writing at a fixed rate, for each format, 64 B and 1 KiB rows, against the recorder main had before
issue 30 (commit BASELINE, its Python package taken from git and run on this build's _core) in the same run.

A trial: a producer process creates a buffer (a ring of at least half a second of rows), waits until the
recorder (`python -m cbuf.cli record NAME -o FILE --from-oldest --until-closed`) has opened its output, then
writes batches on a clock at `rate` rows/s for a few seconds and closes the buffer. The recorder ends when it
has drained the closed buffer; the trial holds if it recorded every row and lost none. The sustained rate is
the highest of a ladder of rates (1.25x apart, up or down from 1.25x the writer's own speed) that holds; the
median over rounds is reported. The writer alone (fed 4096-row batches) is reported
beside it: they say what bounds the recorder (its reader and the process around the writer, or the writer).

    PYTHONPATH=build/python:codegen .venv/bin/python bench/bench_python.py --only recording [--quick]
"""
import json
import multiprocessing as mp
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import cbuf

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "38c3917bd0b1039c71ce3f0fc627cebe9a4e21e1"  # main before the formats package (b8801fc)
# A format is its suffix, and for MCAP optionally ":compression" (cbuf record's default is zstd).
FORMATS = (".npy", ".csv", ".parquet", ".h5", ".mcap", ".mcap:lz4")
STREAMED_BEFORE = (".h5", ".mcap")  # the baseline kept the others' rows in memory and wrote them at the end
# Targets of issue 30: sustained rate >= this many times the baseline's.
TARGETS = {".mcap": 10.0, ".csv": 5.0, ".parquet": 2.0, ".npy": 1.0, ".h5": 1.0}
BATCH = 4096
TRIAL_BYTES = 1 << 30


def schema(row_bytes):
    """A timestamp, a counter, flags and float64 channels: 64 B (6 channels) or 1 KiB (126)."""
    return {"name": "rec_bench", "capacity": 1, "columns": [
        {"name": "t", "type": "timestamp_ns"}, {"name": "seq", "type": "uint32"}, {"name": "flags", "type": "uint32"},
        {"name": "x", "type": f"float64[{(row_bytes - 16) // 8}]"}]}


def sample_rows(dtype, n):
    rows = np.zeros(n, dtype=dtype)
    rows["seq"] = np.arange(n)
    rows["flags"] = np.arange(n) % 7
    rows["x"] = np.sin(np.arange(n * rows["x"].shape[1]) * 1e-3).reshape(n, -1)  # measured-looking values
    return rows


def baseline_package(tmp: Path):
    """main's Python package at BASELINE, run on this build's _core (the extension did not change since), or
    (None, reason)."""
    tmp.mkdir(parents=True, exist_ok=True)
    core = next((Path(cbuf.__file__).parent.glob("_core*.so")), None)
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASELINE, "python/cbuf"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        return None, f"cannot take the baseline from git ({e}); run from a clone with its history"
    shutil.copy(core, tmp / "python" / "cbuf")
    return tmp / "python", ""


def _produce(path, sch, capacity, rate, total, ready, go, result):
    p = cbuf.create(sch, name=path, capacity=capacity, keep=False, prefault=True)
    block = sample_rows(p.dtype, 1 << 16)
    ready.set()
    go.wait(60)
    t0 = time.monotonic()
    sent = 0
    while sent < total:
        due = min(total, int(rate * (time.monotonic() - t0)) + 1)
        if due <= sent:
            time.sleep(0.0003)
            continue
        k = min(due - sent, BATCH, len(block) - sent % len(block))
        chunk = block[sent % len(block):][:k]
        chunk["t"] = time.time_ns()
        p.write_batch(chunk)
        sent += k
    result.value = time.monotonic() - t0
    p.close()


def trial(pythonpath, spec, row_bytes, rate, seconds, tmp: Path, extra=(), watch=None):
    """(held: every row recorded at the rate asked, recorded rows, lost rows, producer seconds) of one
    fixed-rate run; `extra` arguments for
    `cbuf record`, `watch(recorder pid)` called every second while the producer runs."""
    fmt, _, compression = spec.partition(":")
    if watch is None:  # a trial writes at most TRIAL_BYTES (this disk, not the recorder, would bound it)
        seconds = max(0.5, min(seconds, TRIAL_BYTES / (rate * row_bytes)))
    total = max(BATCH, int(rate * seconds))
    # A ring of half a second of rows (at least 64 Ki rows, at most 256 MiB): the recorder's slack.
    capacity = 1 << (min(max(1 << 16, rate // 2), (256 << 20) // row_bytes).bit_length() - 1)
    path = f"/dev/shm/cbuf-rec-bench-{os.getpid()}"
    out = tmp / f"run{fmt}"
    for f in tmp.iterdir():
        f.unlink()
    ctx = mp.get_context("fork")
    ready, go, took = ctx.Event(), ctx.Event(), ctx.Value("d", 0.0)
    prod = ctx.Process(target=_produce, args=(path, schema(row_bytes), capacity, rate, total, ready, go, took))
    prod.start()
    rec = None
    try:
        if not ready.wait(60):
            raise RuntimeError("the producer did not start")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(pythonpath), str(ROOT / "codegen")]))
        rec = subprocess.Popen([sys.executable, "-m", "cbuf.cli", "record", path, "-o", str(out), "--from-oldest",
                                "--until-closed", *(["--compression", compression] if compression else []), *extra],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # The recorder is ready once it has opened its output (its partial file; the baseline wrote .npy, .csv
        # and .parquet only at the end: for those, after 3 s).
        deadline = time.monotonic() + 3
        while not any(tmp.iterdir()) and time.monotonic() < deadline and rec.poll() is None:
            time.sleep(0.01)
        go.set()
        end = time.monotonic() + seconds * 10 + 60
        while prod.is_alive() and time.monotonic() < end:
            prod.join(1.0)
            if watch is not None and rec.poll() is None:
                watch(rec.pid)
        so, se = rec.communicate(timeout=seconds * 20 + 120)
    finally:
        go.set()
        if prod.is_alive():
            prod.kill()
        if rec is not None and rec.poll() is None:
            rec.kill()
            rec.wait()
        if os.path.exists(path):
            os.unlink(path)
    m = re.search(r"recorded (\d+) rows", so + se)
    lost = re.search(r"lost (\d+) rows", so + se)
    recorded, lost = (int(m.group(1)) if m else 0), (int(lost.group(1)) if lost else 0)
    if rec.returncode != 0 or not m:
        raise RuntimeError(f"the recorder failed: {(se or so).strip()[-300:]}")
    # A producer that could not keep its clock (took far longer) says nothing about the recorder.
    held = recorded == total and lost == 0 and took.value <= seconds * 1.25 + 0.1
    return held, recorded, lost, took.value


# The format writer alone, run in a process of the package under test: this build's or the baseline's API.
_WRITER_ALONE = r"""
import json, sys, time
from pathlib import Path
import numpy as np
from cbuf import _core, recording
from cbuf._dtype import LayoutColumn, dtype_from_columns
sys.path.insert(0, sys.argv[1])
from bench_recording import BATCH, sample_rows
schema, fingerprint, row_size, spec, seconds, out = json.loads(sys.argv[2])
fmt, _, compression = spec.partition(":")
_, cols = _core.check_schema(json.dumps(schema), row_size, "bench")
columns = tuple(LayoutColumn(*c) for c in cols)
dtype = dtype_from_columns(columns, row_size)
block = sample_rows(dtype, 16 * BATCH)  # written over and over, each batch with its own times
meta = recording.make_meta("/dev/shm/bench", schema, fingerprint, row_size, 0, 0, 0, [], [])


def batches(n):
    t = time.time_ns()
    for a in range(0, n, BATCH):
        rows = block[a % len(block):][:BATCH]
        rows["t"] = t + a * 1000 + np.arange(len(rows)) * 1000
        yield a, rows


def record(out, n):
    try:
        from cbuf.formats import Stream
    except ImportError:  # the baseline: one buffer, finish(meta, epoch)
        w = recording.open_writer(out, meta, dtype, columns)
        for a, rows in batches(n):
            w.append(a, rows)
        w.finish(dict(meta, rows=n), 1)
    else:
        w = recording.open_writer(out, [Stream("bench", meta, dtype, columns)],
                                  **({"compression": compression} if compression else {}))
        for a, rows in batches(n):
            w.append(0, a, rows)
        w.finish()


out = Path(out)
record(out, BATCH)  # the libraries' one-time set-up (imports, pools) is not timed
out.unlink()
n = BATCH
while True:  # the timed run lasts at least `seconds`
    t0 = time.perf_counter()
    record(out, n)
    took = time.perf_counter() - t0
    out.unlink()
    if took >= seconds:
        break
    n = max(2 * n, int(n * 1.2 * seconds / max(took, 1e-3))) // BATCH * BATCH
print(n / took)
"""


def writer_alone(pythonpath, spec, row_bytes, tmp: Path, seconds):
    """Rows/s of a format writer alone (the package at `pythonpath`), fed 4096-row batches for at least
    `seconds`: no reader, no producer, nothing else running. It writes to the disk the recorder writes to, after
    a sync. (Written to /dev/shm instead, the same code's runs spread more, 0.4-3.2x: tmpfs allocates its pages
    as it goes.)"""
    p = cbuf.create(schema(row_bytes), name=f"/dev/shm/cbuf-rec-bench-{os.getpid()}", capacity=BATCH, keep=False)
    try:
        r = cbuf.open(p.path)
        what = [r.schema, r.fingerprint, r.row_size, spec, seconds, str(tmp / f"alone{spec.partition(':')[0]}")]
        r.close()
    finally:
        p.close()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(pythonpath), str(ROOT / "codegen")]))
    os.sync()  # each run starts with nothing of the last one's left to write back (a GB at these rates)
    try:
        res = subprocess.run([sys.executable, "-c", _WRITER_ALONE, str(Path(__file__).parent), json.dumps(what)],
                             env=env, capture_output=True, text=True, timeout=600)
    finally:
        for f in tmp.iterdir():
            f.unlink()
    if res.returncode != 0:
        raise RuntimeError(f"the writer failed: {res.stderr.strip()[-400:]}")
    return float(res.stdout.split()[-1])


def sustained(pythonpath, spec, row_bytes, start_rate, seconds, tmp: Path):
    """The highest rate of the ladder start_rate * 1.25^k (k from -inf to 4) that holds, and the trials run: up
    from start_rate while it holds, else down."""
    rate, tried, best = start_rate, [], 0

    def holds(r):
        held, recorded, lost, took = trial(pythonpath, spec, row_bytes, int(r), seconds, tmp)
        tried.append({"rate": int(r), "held": held, "lost": lost, "producer_s": round(took, 2)})
        return held

    if holds(rate):
        best = rate
        for _ in range(4):
            rate *= 1.25
            if not holds(rate):
                break
            best = rate
        return int(best), tried
    while rate >= 1000:
        rate *= 0.8
        if holds(rate):
            return int(rate), tried
    return 0, tried


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"


def bench_recording(rounds, quick, results, formats=FORMATS, sizes=(64, 1024)):
    seconds = 1.5 if quick else 3.0
    rounds = min(rounds, 1 if quick else 3)
    alone_s = 0.5 if quick else 1.0
    print(f"\n== Recording at stream speed (CPU {cpu_model()}, {os.cpu_count()} CPUs), median of {rounds} rounds, "
          f"beside main before issue 30 ({BASELINE[:9]}) in the same run:\n   writer alone: rows/s of the format "
          "writer fed 4096-row batches (the target's ratio);\n   sustained: rows/s `cbuf record` keeps up with, "
          f"losing nothing, against a fixed-rate producer ({seconds:g} s trials)")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        old, why = baseline_package(tmp / "baseline")
        work = tmp / "out"
        work.mkdir()
        now = Path(cbuf.__file__).parent.parent
        for row_bytes in sizes:
            for spec in formats:
                fmt = spec.partition(":")[0]
                rec = {"bench": "recording", "format": spec, "row_bytes": row_bytes, "rounds": rounds,
                       "target_ratio": TARGETS[fmt]}
                alone, alone_old, held, held_old, trials = [], [], [], [], []
                try:
                    for k in range(rounds):
                        # Who goes first alternates: a run leaves the file system flushing what it wrote.
                        if old is not None and k % 2:
                            alone_old.append(writer_alone(old, fmt, row_bytes, work, alone_s))
                        alone.append(writer_alone(now, spec, row_bytes, work, alone_s))
                        if old is not None and not k % 2:
                            alone_old.append(writer_alone(old, fmt, row_bytes, work, alone_s))
                        got, t = sustained(now, spec, row_bytes, alone[-1] * 1.25, seconds, work)
                        held.append(got)
                        trials += t
                        if old is not None and fmt in STREAMED_BEFORE:
                            got, _ = sustained(old, fmt, row_bytes, min(alone_old[-1] * 1.25, held[-1]), seconds, work)
                            held_old.append(got)
                except RuntimeError as e:
                    print(f"  {spec:10} {row_bytes:5} B  skipped: {e}")
                    results.append({**rec, "skipped": str(e)})
                    continue
                med = statistics.median
                rec.update(alone_rows_per_s=med(alone), rows_per_s=med(held), min=min(held), max=max(held),
                           trials=trials)
                line = (f"  {spec:10} {row_bytes:5} B  writer alone {med(alone):9.3g} rows/s; sustained "
                        f"{med(held):9.3g} rows/s [{min(held):.3g}-{max(held):.3g}] {med(held) * row_bytes / 1e6:6.1f} MB/s")
                if alone_old:
                    ratios = [a / b for a, b in zip(alone, alone_old)]
                    rec.update(baseline_alone_rows_per_s=med(alone_old), ratio_median=med(ratios),
                               ratio_min=min(ratios), ratio_max=max(ratios))
                    line += (f"; baseline writer {med(alone_old):.3g} rows/s: {rec['ratio_median']:.2f}x "
                             f"(target >= {TARGETS[fmt]:g}x)")
                    if held_old:
                        rec["baseline_rows_per_s"] = med(held_old)
                        line += f", sustained {med(held_old):.3g} rows/s"
                    else:
                        line += ", sustained n/a (it kept every row in memory until the end)"
                else:
                    rec["baseline_skipped"] = why
                    line += f"; baseline skipped: {why}"
                print(line, flush=True)
                results.append(rec)


def _memory(pid):
    """(RssAnon, VmRSS) of a process in MiB: its own heap, and everything it has mapped (the ring included)."""
    with open(f"/proc/{pid}/status") as f:
        st = dict(line.split(":", 1) for line in f if ":" in line)
    return int(st["RssAnon"].split()[0]) / 1024, int(st["VmRSS"].split()[0]) / 1024


def soak(seconds, formats, row_bytes, results, rate=None):
    """The recorder's memory over a long recording at the rate it sustains (found first, as above): split into
    1 GiB segments that are deleted as they complete (the disk holds minutes, not hours, at these rates), its
    RssAnon and VmRSS sampled every second. Flat means the largest value of the last minute is within 10 % of
    the largest of the first minute after 10 s of warm-up."""
    print(f"\n== Recorder memory over {seconds:g} s (CPU {cpu_model()}), {row_bytes} B rows, at the sustained rate")
    now = Path(cbuf.__file__).parent.parent
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for spec in formats:
            at = rate or sustained(now, spec, row_bytes, writer_alone(now, spec, row_bytes, tmp, 1.0) * 1.25, 3.0,
                                   tmp)[0]
            samples = []
            t0 = time.monotonic()

            def watch(pid):
                try:
                    samples.append((time.monotonic() - t0, *_memory(pid)))
                except (OSError, KeyError):
                    return
                for f in sorted(tmp.glob("run_*"))[:-1]:  # completed segments: only the newest is open
                    f.unlink()

            _, recorded, lost, _ = trial(now, spec, row_bytes, at, seconds, tmp, ("--split-size", "1G"), watch)
            window = min(60.0, seconds / 4)
            early = [x for x in samples if 10 <= x[0] <= 10 + window] or samples[:1]
            late = [x for x in samples if x[0] >= samples[-1][0] - window]
            rec = {"bench": "recording_memory", "format": spec, "row_bytes": row_bytes, "seconds": seconds,
                   "rate": at, "recorded": recorded, "lost": lost,
                   "rss_anon_early_mib": max(x[1] for x in early), "rss_anon_late_mib": max(x[1] for x in late),
                   "rss_early_mib": max(x[2] for x in early), "rss_late_mib": max(x[2] for x in late),
                   "samples": [[round(t, 1), round(a, 1), round(r, 1)] for t, a, r in samples]}
            rec["growth"] = rec["rss_late_mib"] / rec["rss_early_mib"] - 1
            print(f"  {spec:10} at {at:.3g} rows/s: VmRSS {rec['rss_early_mib']:.0f} -> {rec['rss_late_mib']:.0f} "
                  f"MiB ({100 * rec['growth']:+.1f} %), RssAnon {rec['rss_anon_early_mib']:.0f} -> "
                  f"{rec['rss_anon_late_mib']:.0f} MiB; {recorded} rows recorded, {lost} lost", flush=True)
            results.append(rec)


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="the recording section of ./dev.sh bench alone")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--sizes", default="64,1024")
    ap.add_argument("--soak", type=float, metavar="SECONDS",
                    help="instead: the recorder's memory over a recording this long, each format")
    ap.add_argument("--rate", type=int, help="with --soak: this rate (rows/s) instead of the one found first")
    ap.add_argument("--json")
    a = ap.parse_args()
    res = []
    if a.soak:
        for size in (int(s) for s in a.sizes.split(",")):
            soak(a.soak, tuple(a.formats.split(",")), size, res, a.rate)
    else:
        bench_recording(a.rounds, a.quick, res, tuple(a.formats.split(",")), tuple(int(s) for s in a.sizes.split(",")))
    if a.json:
        with open(a.json, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in res)
