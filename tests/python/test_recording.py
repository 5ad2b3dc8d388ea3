"""Issue 30: recordings hold exactly the buffer's bytes, stream with bounded memory, record several buffers
into one file and split into segments that replay as one - each checked by readers nobody here wrote
(numpy.load, h5py/h5dump, pyarrow, the npm MCAP and OMG IDL/CDR decoders)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cbuf._core")
import cbuf  # noqa: E402
from cbuf import _core, recording  # noqa: E402
from test_formats import cbuf_cmd, node_read  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FORMATS = [".npy", ".csv", ".parquet", ".h5", ".mcap"]
# Padding after ok (1 byte at 20, then 3 bytes), after label (up to 32) and at the row's end (44..48).
PADDED = {"name": "padded", "capacity": 4096, "row_size": 48, "columns": [
    {"name": "t", "type": "timestamp_ns", "offset": 0},
    {"name": "v", "type": "float32[2]", "offset": 8},
    {"name": "ok", "type": "bool", "offset": 16},
    {"name": "n", "type": "uint32", "offset": 20},
    {"name": "label", "type": "string[5]", "offset": 24},
    {"name": "x", "type": "float64", "offset": 32},
    {"name": "k", "type": "int16", "offset": 40}]}


def padded_rows(dtype, n: int, first: int = 0) -> np.ndarray:
    rows = np.empty(n, dtype=dtype)
    rows.view(np.uint8)[:] = 0xA5  # padding that is not zero: a recording must keep exactly these bytes
    i = np.arange(first, first + n)
    rows["t"] = 1_700_000_000_000_000_000 + i * 1000
    rows["v"] = np.stack([i * 0.25, -i * 0.5], axis=1)
    rows["ok"] = i % 2 == 0
    rows["n"] = i
    rows["label"] = [f"r{j % 1000}".encode() for j in i]
    rows["x"] = i / 3
    rows["k"] = (i % 30000) - 15000
    return rows


def producer(path, schema=PADDED, capacity=1 << 16):
    return _core.Producer(str(path), schema["row_size"], capacity, json.dumps(schema), 0, replace_hint="")


def start_record(buffers, out, *extra):
    return subprocess.Popen([sys.executable, "-m", "cbuf.cli", "record", *map(str, buffers), "-o", str(out),
                             "--until-closed", "--wait", "30", *map(str, extra)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def record_padded(p, out, n: int, *extra):
    """Starts `cbuf record` of producer p into out, gives it time to attach, then writes n padded rows.
    Returns (the recorder process, the n rows' slot bytes as the buffer holds them)."""
    rec = start_record([p.path], out, *extra)
    time.sleep(2.5)
    with cbuf.open(p.path) as r:
        p.write_batch(padded_rows(r.dtype, n))
        return rec, r.rows(0, n).rows.tobytes()


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_recording_holds_exactly_the_buffers_bytes(shm_dir, tmp_path, suffix):
    """The .npy recorder once put its own heap (pointers, text) in the rows' padding. Byte formats hold the slot
    bytes exactly, padding included; CSV and Parquet hold the values, and replay from them writes zero padding."""
    p = producer(shm_dir / "padded")
    out = tmp_path / f"rec{suffix}"
    rec, slots = record_padded(p, out, 3000)
    p.close()
    _, err = rec.communicate(timeout=60)
    assert rec.returncode == 0, err
    got = recording.load(out)
    assert (got.rows, got.first_index, got.last_index) == (3000, 0, 2999)
    data = got.data
    if suffix in (".npy", ".h5", ".mcap"):
        assert data.tobytes() == slots
    else:
        want = np.frombuffer(slots, dtype=data.dtype)
        assert all(np.array_equal(data[c], want[c]) for c in data.dtype.names)
        assert set(np.frombuffer(data.tobytes(), np.uint8).reshape(3000, 48)[:, 17:20].ravel()) == {0}
    if suffix == ".npy":  # and numpy alone reads it
        assert np.load(out).tobytes() == slots
    if suffix == ".parquet":
        import pyarrow.parquet as pq
        t = pq.read_table(out)
        assert t.num_rows == 3000 and t.column("v[1]").to_pylist()[7] == -3.5


ALL_TYPES = json.loads((REPO / "schema" / "examples" / "all_types.json").read_text())


def test_mcap_cdr_rows_decode_exactly_with_foxglove_omgidl(shm_dir, tmp_path):
    """Every column of every row of a cdr recording, decoded by @foxglove/omgidl-serialization from the OMG IDL
    the generator writes: every type, arrays, strings and padding (schema/examples/all_types.json)."""
    from cbuf_codegen import load_model
    m = load_model(REPO / "schema" / "examples" / "all_types.json")
    p = _core.Producer(str(shm_dir / "all_types"), m.row_size, 4096, m.canonical_json, m.fingerprint,
                       replace_hint="")
    out = tmp_path / "all.mcap"
    rec = start_record([p.path], out)
    time.sleep(2.5)
    rng = np.random.default_rng(7)
    with cbuf.open(p.path) as r:
        rows = np.zeros(200, dtype=r.dtype)
        for name in r.dtype.names:
            f = rows[name]
            if f.dtype.kind == "b":
                f[...] = rng.random(f.shape) < 0.5
            elif f.dtype.kind in "iu":
                info = np.iinfo(f.dtype)
                f[...] = rng.integers(info.min, info.max, size=f.shape, dtype=f.dtype, endpoint=True)
            elif f.dtype.kind == "f":
                f[...] = rng.standard_normal(f.shape) * 1e6
            else:
                f[...] = [bytes(rng.integers(1, 127, f.dtype.itemsize, dtype=np.uint8)) for _ in range(len(f))]
        rows["f64"][3], rows["f32"][4] = np.inf, -0.0
        p.write_batch(rows)
        written = r.last(200)
    p.close()
    _, err = rec.communicate(timeout=60)
    assert rec.returncode == 0, err
    d = node_read(out)
    (ch,) = [c for c in d["channels"].values() if c["topic"] == "/cbuf/all_types"]
    assert ch["messageEncoding"] == "cdr" and ch["schemaEncoding"] == "omgidl"
    assert ch["schemaName"] == "cbuf::all_types" and ch["count"] == 200
    assert ch["schema"] == (REPO / "generated" / "all_types" / "all_types.idl").read_text()

    def js(v, kind):  # the value as read_mcap.mjs prints it
        if kind in "iu" and v.dtype.itemsize == 8:
            return str(int(v))
        if kind == "f":
            x = float(v)
            return "inf" if x == np.inf else "-inf" if x == -np.inf else "-0" if x == 0 and np.signbit(x) else x
        if kind == "S":
            return list(v.tobytes())
        return bool(v) if kind == "b" else int(v)
    # the npm reader returns messages in log time order (the random timestamp column): by row index here
    for i, msg in enumerate(sorted(ch["rows"], key=lambda m: int(m["data"]["row_index"]))):
        row = msg["data"]
        assert row["row_index"] == str(i)
        for name in written.dtype.names:
            v = written[i][name]
            kind = written.dtype[name].base.kind
            want = [js(x, kind) for x in v] if written.dtype[name].shape else js(np.asarray(v), kind)
            assert row[name] == want, (i, name)


def test_several_buffers_in_one_mcap_and_h5_replay_as_they_were(shm_dir, tmp_path):
    """`cbuf record a b -o run.mcap|run.h5`: one channel / group per buffer with its own indices; replay
    recreates both byte for byte; h5dump reads the groups."""
    pa, pb = producer(shm_dir / "a"), producer(shm_dir / "b")
    outs = [tmp_path / "run.mcap", tmp_path / "run.h5"]
    recs = [start_record([pa.path, pb.path], o) for o in outs]
    time.sleep(3.0)
    with cbuf.open(pa.path) as ra, cbuf.open(pb.path) as rb:
        pa.write_batch(padded_rows(ra.dtype, 500))
        pb.skip(100)
        pb.write_batch(padded_rows(rb.dtype, 700, 100))
        want = {"a": ra.rows(0, 500).rows.tobytes(), "b": rb.rows(100, 800).rows.tobytes()}
    pa.close()
    pb.close()
    for rec in recs:
        _, err = rec.communicate(timeout=60)
        assert rec.returncode == 0, err
    for o in outs:
        got = {r.name: r for r in recording.load_all([o])}
        assert sorted(got) == ["a", "b"]
        assert (got["b"].first_index, got["b"].last_index) == (100, 799)
        assert {k: r.data.tobytes() for k, r in got.items()} == want
        for x in shm_dir.iterdir():
            x.unlink()
        cbuf_cmd("replay", o, "--as-fast-as-possible", env={**os.environ, "CBUF_DIR": str(shm_dir)})
        for name in ("a", "b"):
            with cbuf.open(shm_dir / name) as r:
                res = r.read_new()
                assert res.rows.tobytes() == want[name] and res.first == (0 if name == "a" else 100)
    h5dump = subprocess.run(["h5dump", "-H", str(outs[1])], capture_output=True, text=True)
    if h5dump.returncode == 0 or "not found" not in h5dump.stderr:
        assert 'GROUP "a"' in h5dump.stdout and 'GROUP "b"' in h5dump.stdout
    r = cbuf_cmd("record", shm_dir / "a", shm_dir / "b", "-o", tmp_path / "two.npy", ok=False)
    assert r.returncode == 1 and "holds one buffer" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("suffix", [".mcap", ".h5", ".npy"])
def test_split_segments_stand_alone_and_replay_as_one(shm_dir, tmp_path, suffix):
    """--split-size writes numbered segments, each a whole recording; replaying the set (files or their
    directory) continues the indices; a missing middle segment is reported as the exact rows it held, and
    readers see them lost; a segment of another recording is refused."""
    p = producer(shm_dir / "padded")
    folder = tmp_path / "set"
    folder.mkdir()
    rec = start_record([p.path], folder / f"run{suffix}", "--split-size", "64K", "--compression", "none"
                       if suffix == ".mcap" else "zstd", *(["--encoding", "cdr"] if suffix == ".mcap" else []))
    time.sleep(2.5)
    with cbuf.open(p.path) as r:
        for k in range(20):  # batches the recorder takes one at a time
            p.write_batch(padded_rows(r.dtype, 500, 500 * k))
            time.sleep(0.05)
        slots = r.rows(0, 10000).rows.tobytes()
    p.close()
    _, err = rec.communicate(timeout=60)
    assert rec.returncode == 0, err
    segs = sorted(folder.iterdir())
    assert len(segs) >= 3 and [s.name for s in segs if s.suffix == suffix][0] == f"run_0000{suffix}"
    files = [s for s in segs if s.suffix == suffix]
    parts = [recording.load(s) for s in files]
    assert sum(x.rows for x in parts) == 10000 and parts[0].first_index == 0
    assert all(a.last_index + 1 == b.first_index for a, b in zip(parts, parts[1:]))  # never split, never twice
    (whole,) = recording.load_all([folder])
    assert whole.data.tobytes() == slots and (whole.first_index, whole.last_index) == (0, 9999)
    # a missing middle segment: the rows it held come back as lost rows, named on stderr
    gone = files[1]
    held = parts[1]
    gone.rename(tmp_path / gone.name)
    r = cbuf_cmd("replay", *[f for f in files if f != gone], "--name", shm_dir / "back", "--as-fast-as-possible")
    assert f"rows {held.first_index}..{held.last_index} ({held.rows} rows) lost" in r.stderr
    with cbuf.open(shm_dir / "back", start="oldest") as back:
        res = back.read_new()
        assert res.first == 0 and len(res.rows) == parts[0].rows
        res = back.read_new()
        assert res.lost_range == range(held.first_index, held.last_index + 1)
    (tmp_path / gone.name).rename(gone)
    # a segment of another recording, and the same segment twice
    other = tmp_path / "other"
    other.mkdir()
    p2 = producer(shm_dir / "padded2")
    rec, _ = record_padded(p2, other / f"run{suffix}", 100, "--split-size", "64K")
    p2.close()
    assert rec.wait(timeout=60) == 0
    foreign = sorted(x for x in other.iterdir() if x.suffix == suffix)[0]
    for bad_set, what in (([files[0], foreign], "another recording"), ([files[0], files[0]], "twice")):
        r = cbuf_cmd("replay", *bad_set, "--name", shm_dir / "no", ok=False)
        assert r.returncode == 1 and what in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not (shm_dir / "no").exists()


@pytest.mark.parametrize("suffix", [".npy", ".csv", ".h5", ".mcap"])
def test_a_recorder_killed_with_sigkill_leaves_what_its_format_keeps(shm_dir, tmp_path, suffix):
    """kill -9 mid-recording: the partial file holds the rows up to the last flush, readable once renamed
    (npy: numpy.load; csv: the rows its metadata line counted; h5: h5py; mcap: its finished chunks, which the
    MCAP reader streams)."""
    p = producer(shm_dir / "padded")
    out = tmp_path / f"run{suffix}"
    rec, slots = record_padded(p, out, 5000)
    time.sleep(2.0)  # several flushes
    rec.send_signal(signal.SIGKILL)
    rec.wait(timeout=30)
    p.close()
    partial = tmp_path / f".run{suffix}.partial{suffix}"
    assert partial.exists() and not out.exists()
    if suffix == ".mcap":
        from mcap.exceptions import McapError
        from mcap.records import Message
        from mcap.stream_reader import StreamReader
        n = 0
        with open(partial, "rb") as f:  # the chunks up to the last flush; what follows is unfinished
            try:
                for record in StreamReader(f).records:
                    n += isinstance(record, Message)
            except (McapError, EOFError, ValueError):
                pass
        assert n == 5000
        return
    if suffix == ".npy":
        assert np.load(partial).tobytes() == slots
        side = tmp_path / f".run{suffix}.cbuf.json.partial.json"
        side.rename(str(out) + ".cbuf.json")
    partial.rename(out)
    got = recording.load(out)
    assert got.data.tobytes() == slots if suffix != ".csv" else got.rows == 5000


# --- bounded memory ----------------------------------------------------------------------------------------
WIDE = {"name": "wide", "capacity": 16384, "row_size": 1024, "columns": [
    {"name": "t", "type": "timestamp_ns", "offset": 0},
    {"name": "seq", "type": "uint64", "offset": 8},
    {"name": "x", "type": "float64[4]", "offset": 16},
    {"name": "note", "type": "string[976]", "offset": 48}]}
MEMORY_LIMIT = 160 << 20  # what the recorder may hold: the test records four times as much
RATE = {".npy": 400_000, ".csv": 100_000, ".parquet": 200_000, ".h5": 400_000, ".mcap": 200_000}  # rows/s


class MemoryCgroup:
    """A memory cgroup (v2 memory.max, or v1 memory.limit_in_bytes) of `limit` bytes that a child process
    enters before it runs, made beside this process's own; `None` from make() where none can be made here."""

    def __init__(self, path: Path):
        self.path = path

    @staticmethod
    def make(limit: int):
        mine = {}
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, where = line.split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                mine[c] = where.lstrip("/")
        name = f"cbuf-test-{os.getpid()}"
        tries = [(Path("/sys/fs/cgroup/memory") / mine["memory"], "memory.limit_in_bytes")] if "memory" in mine \
            else []
        if "" in mine:  # v2: a sibling of this process's cgroup, where memory is delegated to the parent
            for root in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
                if (root / "cgroup.controllers").exists():
                    tries.append((root / mine[""] / "..", "memory.max"))
        for parent, knob in tries:
            path = parent / name
            try:
                path.mkdir()
            except OSError:
                continue
            try:
                (path / knob).write_text(str(limit))
                return MemoryCgroup(path)
            except OSError:
                path.rmdir()
        return None

    def enter(self) -> None:  # preexec_fn: runs in the child
        (self.path / "cgroup.procs").write_text("0")

    def remove(self) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def _rss_anon_mib(pid: int):
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return int(status.split("RssAnon:")[1].split()[0]) / 1024


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_recorders_memory_stays_flat_however_much_it_records(shm_dir, tmp_path, suffix):
    """The recorder streams: it records four times MEMORY_LIMIT of 1 KiB rows inside a memory cgroup of that
    limit (where one can be made here; the kernel would kill a recorder that kept its rows), and its own memory
    (RssAnon, sampled) grows by no more than 32 MiB after the first quarter. Before issue 30, .npy, .csv and
    .parquet kept every row until the end."""
    rows_wanted = 4 * MEMORY_LIMIT // WIDE["row_size"]
    p = producer(shm_dir / "wide", WIDE, capacity=WIDE["capacity"])
    with cbuf.open(p.path) as r:
        block = np.zeros(4096, dtype=r.dtype)
    block["seq"] = np.arange(4096)
    block["x"] = np.random.default_rng(3).random((4096, 4))
    block["note"] = [(f"row {i} " * 200)[:976].encode() for i in range(4096)]  # text that differs per row
    cg = MemoryCgroup.make(MEMORY_LIMIT)
    out = tmp_path / f"run{suffix}"
    try:
        rec = subprocess.Popen([sys.executable, "-m", "cbuf.cli", "record", p.path, "-o", str(out),
                                "--until-closed", "--wait", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=cg.enter if cg else None)
        while not (tmp_path / f".run{suffix}.partial{suffix}").exists() and rec.poll() is None:
            time.sleep(0.05)
        samples, sent, t0 = [], 0, time.monotonic()
        while sent < rows_wanted and rec.poll() is None:
            if sent > RATE[suffix] * (time.monotonic() - t0):  # a fixed rate the recorder keeps up with
                time.sleep(0.002)
                continue
            p.write_batch(block[sent % 4096:][:1024])
            sent += 1024
            m = _rss_anon_mib(rec.pid)
            if m is not None:
                samples.append(m)
        p.close()
        so, se = rec.communicate(timeout=120)
    finally:
        if cg:
            cg.remove()
    assert rec.returncode == 0, f"recorder ended with {rec.returncode} (killed by the memory limit?): {se}"
    recorded = int((so + se).split("recorded ")[1].split()[0])
    assert recorded * WIDE["row_size"] >= 3 * MEMORY_LIMIT, so  # losses allowed, not holding
    quarter = len(samples) // 4
    early, late = max(samples[:quarter]), max(samples[quarter:])
    assert late <= early + 32, f"RssAnon grew from {early:.0f} to {late:.0f} MiB while recording {so}"


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_text_that_is_not_utf8_midway_is_kept_exactly(shm_dir, tmp_path, suffix):
    """A string column's values are text until one that is not UTF-8 comes, in a later batch: the streamed file
    keeps it exactly (Parquet used to fail the whole recording: its column was typed text at the start)."""
    pytest.importorskip("pyarrow")
    schema = {"name": "s", "capacity": 64, "columns": [{"name": "a", "type": "uint32"},
                                                        {"name": "s", "type": "string[4]"}]}
    p = cbuf.create(schema, name=str(shm_dir / "s"), keep=False)
    out = tmp_path / f"run{suffix}"
    rec = start_record([p.path], out)
    while not (tmp_path / f".run{suffix}.partial{suffix}").exists():
        time.sleep(0.05)
    for a, s in ((1, b"ok"), (2, b"\xff\xfe"), (3, b"fine")):
        p.write(a=a, s=s)
        time.sleep(0.3)  # each its own batch
    p.close()
    _, err = rec.communicate(timeout=60)
    assert rec.returncode == 0, err
    assert recording.load(out).data.tolist() == [(1, b"ok"), (2, b"\xff\xfe"), (3, b"fine")]
