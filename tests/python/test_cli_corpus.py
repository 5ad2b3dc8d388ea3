"""No input makes a `cbuf` subcommand print a traceback or leave debris.

A corpus of bad inputs - damaged recordings of every format, files that are not buffers, bad arguments, full
and read-only file systems - runs through the subcommands: each ends with exit status 1, one line on stderr
that names the file, and no file or buffer left behind. And record -> replay -> record is byte-identical for a
schema with padding inside the row, in every format.
"""
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

cbuf = pytest.importorskip("cbuf")
pytest.importorskip("cbuf._core")

# uint8 @0, bool @1, string[16] @2, padding 18..24, float64 @24, int16[3] @32, padding 38..40: 40-byte rows.
PADDED = {"name": "padded", "capacity": 256, "row_size": 40, "columns": [
    {"name": "a", "type": "uint8", "offset": 0}, {"name": "ok", "type": "bool", "offset": 1},
    {"name": "label", "type": "string[16]", "offset": 2}, {"name": "x", "type": "float64", "offset": 24},
    {"name": "v", "type": "int16[3]", "offset": 32}]}
DTYPE = np.dtype({"names": ["a", "ok", "label", "x", "v"], "formats": ["u1", "?", "S16", "<f8", ("<i2", (3,))],
                  "offsets": [0, 1, 2, 24, 32], "itemsize": 40})


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "cbuf.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=60, env=env)


def one_line_error(r, *words):
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    for w in words:
        assert str(w) in r.stderr, r.stderr


def rows(n=50):
    d = np.zeros(n, dtype=DTYPE)
    d["a"] = np.arange(n) % 256
    d["ok"] = np.arange(n) % 2 == 0
    d["label"] = [f"row {i}".encode() for i in range(n)]
    d["x"] = np.linspace(-1, 1, n) / 3
    d["v"] = np.arange(3 * n).reshape(n, 3) - 50
    return d


def npy_recording(folder: Path, name="src.npy", data=None, meta=None) -> Path:
    p = folder / name
    np.save(p, rows() if data is None else data)
    Path(str(p) + ".cbuf.json").write_text(json.dumps(
        meta if meta is not None else {"cbuf_recording": 1, "schema_json": json.dumps(PADDED), "row_size": 40,
                                       "fingerprint": 0}))
    return p


@pytest.fixture
def env(shm_dir):
    return {**os.environ, "CBUF_DIR": str(shm_dir)}


def no_debris(folder: Path, shm_dir: Path, allowed=()):
    left = sorted(p.name for p in list(folder.iterdir()) + list(shm_dir.iterdir()) if p.name not in allowed)
    assert not left, left


@pytest.mark.parametrize("fmt", [".npy", ".csv", ".parquet", ".h5", ".mcap"])
def test_record_replay_record_is_byte_identical_for_a_padded_schema(tmp_path, shm_dir, env, fmt):
    pytest.importorskip("pyarrow")
    pytest.importorskip("h5py")
    pytest.importorskip("mcap")
    src = npy_recording(tmp_path)
    r = run("replay", src, "--name", "one", "--as-fast-as-possible", env=env)
    assert r.returncode == 0, r.stderr
    first = tmp_path / f"first{fmt}"
    r = run("record", "one", "-o", first, "--rows", 50, "--from-oldest", "--wait", 0, env=env)
    assert r.returncode == 0, r.stderr
    r = run("replay", first, "--name", "two", "--as-fast-as-possible", env=env)
    assert r.returncode == 0, r.stderr
    second = tmp_path / f"second{fmt}"
    r = run("record", "two", "-o", second, "--rows", 50, "--from-oldest", "--wait", 0, env=env)
    assert r.returncode == 0, r.stderr
    from cbuf import recording
    a, b = recording.load(first).data, recording.load(second).data
    assert a.dtype.itemsize == 40 and a.tobytes() == b.tobytes() == rows().tobytes()
    with cbuf.open(shm_dir / "two") as reader:
        assert reader.last(50).tobytes() == rows().tobytes()


def damaged_recordings(folder: Path):
    """(name, path) of each damaged recording; the test replays each one."""
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    good = npy_recording(folder, "good.npy")
    out = {}
    b = good.read_bytes()
    out["npy truncated"] = npy_recording(folder, "trunc.npy")
    out["npy truncated"].write_bytes(b[:len(b) // 2])
    out["npy sidecar not JSON"] = npy_recording(folder, "badjson.npy")
    Path(str(out["npy sidecar not JSON"]) + ".cbuf.json").write_text("{not json")
    out["npy sidecar unrelated"] = npy_recording(folder, "unrelated.npy", meta={"hello": "world"})
    out["npy sidecar bad schema"] = npy_recording(folder, "badschema.npy", meta={
        "schema_json": json.dumps({"name": "x", "columns": [{"name": "a", "type": 5, "offset": 0}]}),
        "row_size": 40, "fingerprint": 0})
    out["npy random bytes"] = npy_recording(folder, "random.npy")
    out["npy random bytes"].write_bytes(os.urandom(4000))
    out["npy plain array"] = npy_recording(folder, "plain.npy", data=np.arange(10.0))
    out["npy without sidecar"] = folder / "lonely.npy"
    np.save(out["npy without sidecar"], rows())
    out["npy zero rows"] = npy_recording(folder, "empty.npy", data=rows(0))
    # CSV: a real recording first, then damaged copies of it.
    csv_good = folder / "good.csv"
    from cbuf import recording
    recording.save(csv_good, rows(), recording.make_meta("x", PADDED, 0, 40, 0, 50, 0, [], []))
    lines = csv_good.read_text().splitlines(keepends=True)
    for name, text in {
        "csv truncated": "".join(lines[:10]) + lines[10][: len(lines[10]) // 2],
        "csv only header": "".join(lines[:2]),
        "csv no cbuf line": "".join(lines[1:]),
        "csv bad value": "".join(lines[:5]) + lines[5].replace(",", ",zz", 1) + "".join(lines[6:]),
        "csv unknown column": lines[0] + lines[1].replace("x,", "nope,", 1) + "".join(lines[2:]),
        "csv header not JSON": "# cbuf {oops\n" + "".join(lines[1:]),
    }.items():
        p = folder / (name.replace(" ", "_") + ".csv")
        p.write_text(text)
        out[name] = p
    pq_good = folder / "good.parquet"
    recording.save(pq_good, rows(), recording.make_meta("x", PADDED, 0, 40, 0, 50, 0, [], []))
    out["parquet truncated"] = folder / "trunc.parquet"
    out["parquet truncated"].write_bytes(pq_good.read_bytes()[:300])
    out["parquet without cbuf metadata"] = folder / "plain.parquet"
    pq.write_table(pyarrow.table({"a": [1, 2, 3]}), out["parquet without cbuf metadata"])
    out["unknown format"] = folder / "data.txt"
    out["unknown format"].write_text("hello")
    out["missing"] = folder / "missing.npy"
    return out


def test_replay_of_damaged_recordings_is_one_line_and_leaves_nothing(tmp_path, shm_dir, env):
    recs = damaged_recordings(tmp_path)
    before = set(tmp_path.iterdir())
    for name, path in recs.items():
        r = run("replay", path, "--name", "out", "--as-fast-as-possible", env=env)
        one_line_error(r, path.name if "sidecar" not in name else path.name + ".cbuf.json")
        assert not list(shm_dir.iterdir()), (name, list(shm_dir.iterdir()))  # no buffer created
    assert set(tmp_path.iterdir()) == before  # and no file


def test_bad_arguments_are_one_line_each(tmp_path, shm_dir, env, producer):
    p = producer(capacity=64, name="buf")
    p.cmd("write 5")
    for args, words in [
        (["tail", p.path, "-n", "-5"], ["-n", "must be >= 0"]),
        (["tail", p.path, "--columns", ",,,"], ["names no column"]),
        (["stat", p.path, "-i", "-1"], ["--interval", "must be > 0"]),
        (["stat", p.path, "--count", "0"], ["--count"]),
        (["record", p.path, "-o", tmp_path / "x.npy", "--rows", "0"], ["--rows"]),
        (["record", p.path, "-o", tmp_path / "x.npy", "--duration", "nan"], ["--duration"]),
        (["replay", tmp_path / "x.npy", "--rate", "0"], ["--rate"]),
        (["ls", "--interval", "abc"], ["--interval", "not a number"]),
        (["gc", "--older-than", "-3"], ["--older-than"]),
    ]:
        one_line_error(run(*args, env=env), *words)
    no_debris(tmp_path, shm_dir, allowed=("buf",))


def test_files_that_are_not_buffers(tmp_path, env):
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00garbage" * 100)
    for cmd in (["info", junk], ["tail", junk], ["tail", "-f", junk, "--wait", "0"], ["stat", junk, "--count", "1"],
                ["record", junk, "-o", tmp_path / "r.npy", "--rows", "1"], ["plot", junk, "--save", tmp_path / "p.png"]):
        one_line_error(run(*cmd, env=env), junk)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk"]


def test_record_refuses_to_overwrite_and_names_the_users_file(tmp_path, producer):
    p = producer(capacity=64, name="buf")
    p.cmd("write 5")
    out = tmp_path / "r.npy"
    out.write_text("precious")
    one_line_error(run("record", p.path, "-o", out, "--rows", 1, "--from-oldest"), out, "--force")
    assert out.read_text() == "precious"
    r = run("record", p.path, "-o", out, "--rows", 1, "--from-oldest", "--force")
    assert r.returncode == 0 and len(np.load(out)) == 1
    r = run("record", p.path, "-o", "/proc/nope.npy", "--rows", 1, "--from-oldest")
    one_line_error(r, "/proc/nope.npy")
    assert ".partial" not in r.stderr


class Mount:
    """A small tmpfs mounted by the test (root only)."""

    def __init__(self, options):
        self.path = Path("/tmp") / f"cbuf-mnt-{uuid.uuid4().hex[:8]}"
        self.path.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "none", str(self.path)], capture_output=True)
        if r.returncode != 0:
            self.path.rmdir()
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()}); needs root")

    def close(self):
        subprocess.run(["umount", "-l", str(self.path)], check=False)
        self.path.rmdir()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
@pytest.mark.parametrize("fmt", [".npy", ".csv", ".parquet", ".h5", ".mcap"])
def test_record_on_a_full_or_read_only_file_system_keeps_the_users_file(producer, fmt):
    """Never destroy a user's file before its replacement is complete: with --force over an existing file, a
    full or read-only file system leaves it byte for byte, one line names it, nothing else is left (and no
    crash: HDF5 once took the recorder down with SIGSEGV after a failed write)."""
    pytest.importorskip("pyarrow")
    pytest.importorskip("h5py")
    pytest.importorskip("mcap")
    p = producer(capacity=16384, name="buf")
    p.cmd("write 16384")
    for options in ("size=64k", "ro"):
        for existing in (False, True):
            m = Mount("size=64k")
            try:
                out = m.path / f"r{fmt}"
                if existing:
                    out.write_bytes(b"precious \x00\xff" * 100)
                if options == "ro":
                    subprocess.run(["mount", "-o", "remount,ro", str(m.path)], check=True)
                r = run("record", p.path, "-o", out, "--rows", 16384, "--from-oldest", *(["--force"] * existing))
                one_line_error(r, out)
                assert ".partial" not in r.stderr and ": :" not in r.stderr
                assert sorted(x.name for x in m.path.iterdir()) == (["r" + fmt] if existing else [])
                if existing:
                    assert out.read_bytes() == b"precious \x00\xff" * 100
            finally:
                m.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
@pytest.mark.parametrize("fmt", [".npy", ".csv", ".parquet", ".h5", ".mcap"])
def test_a_full_disk_mid_segment_keeps_the_completed_segments(producer, fmt):
    """A split recording that fills its file system: one line naming the segment that could not be written,
    every completed segment intact and replayable as a set (the missing rows named), no partial file left."""
    pytest.importorskip("pyarrow")
    pytest.importorskip("h5py")
    pytest.importorskip("mcap")
    p = producer(capacity=16384, name="buf")
    p.cmd("write 16384")
    # Rows are taken 4096 at a time (256 KiB here), a segment ends between two such batches; HDF5 allocates
    # its 1 MiB chunks whole.
    m = Mount("size=4m" if fmt == ".h5" else "size=700k")
    try:
        r = run("record", p.path, "-o", m.path / f"run{fmt}", "--rows", 16384, "--from-oldest", "--split-size",
                "200K", *(["--compression", "none"] if fmt == ".mcap" else []))
        one_line_error(r, m.path / "run_", fmt)
        assert ".partial" not in r.stderr
        left = sorted(x.name for x in m.path.iterdir())
        segments = [x for x in left if x.endswith(fmt)]
        assert len(segments) >= 1 and not [x for x in left if x.startswith(".")], (left, r.stderr)
        assert segments == [f"run_{k:04d}{fmt}" for k in range(len(segments))]
        assert f"run_{len(segments):04d}{fmt}" in r.stderr  # the segment it was writing
        from cbuf import recording
        (whole,) = recording.load_all([m.path])
        assert whole.first_index == 0 and whole.rows == whole.last_index + 1 and 0 < whole.rows < 16384
    finally:
        m.close()


def test_record_without_limits_runs_until_the_producer_closes_with_until_closed(producer, tmp_path):
    p = producer(capacity=256, name="buf")
    out = tmp_path / "all.npy"
    rec = subprocess.Popen([sys.executable, "-m", "cbuf.cli", "record", p.path, "-o", out, "--until-closed"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    import time
    time.sleep(1.0)
    p.cmd("write 100")
    p.cmd("close")
    _, err = rec.communicate(timeout=30)
    assert rec.returncode == 0, err
    assert "recorded 100 rows" in err and len(np.load(out)) == 100
    meta = json.loads(Path(str(out) + ".cbuf.json").read_text())
    assert meta["rows"] == 100 and meta["lost"] == 0


# --- HDF5 and MCAP recordings built to hurt ----------------------------------------------------------------
RSS_LIMIT_MB = 200  # a replayer with numpy, h5py and mcap loaded peaks at 30-70 MB; the bombs asked for 1 GB


# Runs a command and prints its peak RSS (kB) as the last line of stdout. A small process of its own starts the
# command: Linux counts a forked child's peak from its parent's pages, so started from pytest itself every
# command would seem to need pytest's memory.
_MEASURE = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, flush=True); sys.exit(r.returncode)")


def run_measured(*args, env=None):
    """(CompletedProcess, peak RSS in MB) of one `cbuf` command, as the kernel measured it."""
    r = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "cbuf.cli", *map(str, args)],
                       capture_output=True, text=True, timeout=120, env=env)
    *out, rss = r.stdout.splitlines()
    return subprocess.CompletedProcess(r.args, r.returncode, "\n".join(out), r.stderr), int(rss) / 1024


def meta(rows_=50):
    from cbuf import recording
    return recording.make_meta("/dev/shm/padded", PADDED, 0, 40, 0, rows_, 0, [], [])


def mcap_bytes(*records) -> bytes:
    """An MCAP file of the given records (mcap.records objects or (opcode, body) pairs), with magic, a header,
    a data end and a footer around them."""
    from mcap.data_stream import RecordBuilder
    from mcap.records import DataEnd, Footer, Header
    b = RecordBuilder()
    for rec in (Header(profile="", library="test"), *records, DataEnd(data_section_crc=0),
                Footer(summary_start=0, summary_offset_start=0, summary_crc=0)):
        if isinstance(rec, tuple):
            b.write(bytes([rec[0]]) + len(rec[1]).to_bytes(8, "little") + rec[1])
        else:
            rec.write(b)
    magic = b"\x89MCAP0\r\n"
    return magic + b.end() + magic


def cbuf_mcap(messages, compression="", declared=None, data=None, crc=None, meta_text=None, log_times=None,
              chunks=1, encoding="json") -> bytes:
    """An MCAP file as cbuf record lays it out: the rows' channel, `chunks` chunks with `messages` (JSON bytes),
    the cbuf metadata record. `declared`/`data`/`crc` override the first chunk's fields to damage it."""
    import zlib
    from mcap.data_stream import RecordBuilder
    from mcap.records import Channel, Chunk, Message, Metadata, Schema
    made, per = [], -(-len(messages) // chunks) if messages else 1
    for k in range(chunks):
        inner = RecordBuilder()
        Schema(id=1, name="padded", encoding="jsonschema", data=b"{}").write(inner)
        Channel(id=1, topic="/cbuf/padded", message_encoding=encoding, metadata={}, schema_id=1).write(inner)
        for i in range(k * per, min(len(messages), (k + 1) * per)):
            t = i if log_times is None else int(log_times[i])
            Message(channel_id=1, log_time=t, publish_time=t, sequence=i, data=messages[i]).write(inner)
        raw = inner.end()
        packed = raw
        if compression == "zstd":
            import zstandard
            packed = zstandard.ZstdCompressor().compress(raw)
        first = k == 0
        made.append(Chunk(compression=compression, data=packed if data is None or not first else data,
                          message_start_time=0, message_end_time=0,
                          uncompressed_crc=zlib.crc32(raw) if crc is None or not first else crc,
                          uncompressed_size=len(raw) if declared is None or not first else declared))
    text = json.dumps(meta()) if meta_text is None else meta_text
    return mcap_bytes(*made, Metadata(name="cbuf", metadata={"meta": text}))


def row_json(i, **over):
    d = {"row_index": i, "a": i % 256, "ok": i % 2 == 0, "label": f"row {i}", "x": i / 3, "v": [i, -i, 7]}
    d.update(over)
    return json.dumps(d).encode()


def zstd_bomb(size: int) -> bytes:
    """`size` zero bytes, zstd-compressed without ever holding them (a few KB)."""
    import io
    import zstandard
    out = io.BytesIO()
    with zstandard.ZstdCompressor().stream_writer(out, closefd=False) as w:
        block = bytes(1 << 20)
        for _ in range(size >> 20):
            w.write(block)
    return out.getvalue()


def hostile_mcaps(folder: Path) -> dict:
    pytest.importorskip("mcap")
    pytest.importorskip("zstandard")
    from cbuf import recording
    good = folder / "good.mcap"
    recording.save(good, rows(), meta(), encoding="json")
    out = {}
    b = good.read_bytes()
    at, cuts = 8, []  # every record boundary of the good file, and the middle of every record
    while at < len(b) - 8:
        length = int.from_bytes(b[at + 1:at + 9], "little")
        cuts += [at, at + 9 + length // 2]
        at += 9 + length
    for k, cut in enumerate(cuts):
        out[f"mcap truncated at {cut}"] = b[:cut]
    ok = [row_json(i) for i in range(5)]
    out["mcap corrupt zstd chunk"] = cbuf_mcap(ok, "zstd", data=b"\x28\xb5\x2f\xfd" + os.urandom(60))
    out["mcap lz4 garbage"] = cbuf_mcap(ok, "lz4", data=os.urandom(64))
    out["mcap unknown compression"] = cbuf_mcap(ok, "brotli")
    out["mcap chunk CRC wrong"] = cbuf_mcap(ok, crc=12345)
    out["mcap zstd bomb declared"] = cbuf_mcap(ok, "zstd", declared=1 << 30, data=zstd_bomb(1 << 30))
    out["mcap zstd bomb undeclared"] = cbuf_mcap(ok, "zstd", declared=1000, data=zstd_bomb(1 << 30))
    out["mcap metadata nested deeply"] = cbuf_mcap(ok, meta_text="[" * 100000 + "]" * 100000)
    out["mcap metadata not JSON"] = cbuf_mcap(ok, meta_text="{oops")
    out["mcap string in a float column"] = cbuf_mcap(ok + [row_json(5, x="abc")])
    out["mcap float in an int column"] = cbuf_mcap(ok + [row_json(5, a=1.5)])
    out["mcap int out of range"] = cbuf_mcap(ok + [row_json(5, a=300)])
    out["mcap bool in an int column"] = cbuf_mcap(ok + [row_json(5, a=True)])
    out["mcap array too short"] = cbuf_mcap(ok + [row_json(5, v=[1, 2])])
    out["mcap string too long"] = cbuf_mcap(ok + [row_json(5, label="x" * 17)])
    out["mcap message not JSON"] = cbuf_mcap(ok + [b"\xff{"])
    out["mcap message nested deeply"] = cbuf_mcap(ok + [b"[" * 100000])
    out["mcap 3M tiny messages in one 99 MB chunk"] = cbuf_mcap([b"{}"] * 3_000_000, "zstd")
    out["mcap 3M tiny messages in 3 chunks"] = cbuf_mcap([b"{}"] * 3_000_000, "zstd", chunks=3)
    out["mcap no rows"] = cbuf_mcap([])
    cdr = [b"\x00\x01\x00\x00" + i.to_bytes(8, "little") + rows()[i:i + 1].tobytes() for i in range(5)]
    out["mcap cdr message cut short"] = cbuf_mcap(cdr + [cdr[0][:-3]], encoding="cdr")
    out["mcap cdr message too long"] = cbuf_mcap(cdr + [cdr[0] + b"\x00"], encoding="cdr")
    out["mcap cdr big-endian header"] = cbuf_mcap(cdr + [b"\x00\x00\x00\x00" + cdr[0][4:]], encoding="cdr")
    out["mcap unknown message encoding"] = cbuf_mcap(cdr, encoding="protobuf")
    paths = {}
    for name, data in out.items():
        p = folder / (name.replace(" ", "_") + ".mcap")
        p.write_bytes(data)
        paths[name] = p
    good.unlink()
    return paths


def hostile_h5s(folder: Path) -> dict:
    h5py = pytest.importorskip("h5py")
    out = {}

    def make(name, build, cbuf_attr=None):
        p = folder / (name.replace(" ", "_") + ".h5")
        with h5py.File(p, "w") as f:
            f.attrs["cbuf"] = json.dumps(meta()) if cbuf_attr is None else cbuf_attr
            build(f)
        out[name] = p
    make("h5 rows is a group", lambda f: f.create_group("rows"))
    wide = np.dtype({"names": ["a", "ok", "label", "x", "v"], "formats": ["<f8", "?", "S16", "<f8", ("<i2", (3,))]})
    make("h5 float stored for uint8", lambda f: f.create_dataset("rows", data=np.array(
        [(1e300, True, b"x", 0.5, (1, 2, 3))], dtype=wide)))
    signed = np.dtype({"names": ["a", "ok", "label", "x", "v"], "formats": ["i1", "?", "S16", "<f8", ("<i2", (3,))]})
    make("h5 int8 stored for uint8", lambda f: f.create_dataset("rows", data=np.array(
        [(-1, True, b"x", 0.5, (1, 2, 3))], dtype=signed)))
    make("h5 strings stored for float", lambda f: f.create_dataset("rows", data=np.array(
        [(1, True, b"x", b"12", (1, 2, 3))], dtype=np.dtype({"names": ["a", "ok", "label", "x", "v"], "formats": [
            "u1", "?", "S16", "S8", ("<i2", (3,))]}))))
    make("h5 declares 2M rows it does not store", lambda f: f.create_dataset(
        "rows", shape=(2_000_000,), maxshape=(None,), dtype=DTYPE, chunks=(65536,)))
    make("h5 declares 10^12 rows", lambda f: f.create_dataset(
        "rows", shape=(10**12,), maxshape=(None,), dtype=DTYPE, chunks=(65536,)))
    make("h5 attribute nested deeply", lambda f: f.create_dataset("rows", data=rows()),
         cbuf_attr="[" * 100000 + "]" * 100000)
    make("h5 rows not 1-D", lambda f: f.create_dataset("rows", data=rows().reshape(5, 10)))
    make("h5 no rows", lambda f: f.create_dataset("rows", data=rows(0)))
    rnd = folder / "random.h5"
    rnd.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(3000))
    out["h5 random bytes"] = rnd
    good = folder / "goodh5.h5"
    make("goodh5", lambda f: f.create_dataset("rows", data=rows()))
    trunc = folder / "trunc.h5"
    trunc.write_bytes(good.read_bytes()[:good.stat().st_size // 2])
    out["h5 truncated"] = trunc
    del out["goodh5"]
    good.unlink()
    return out


def test_replay_of_hostile_hdf5_and_mcap_recordings_is_one_line_bounded_and_leaves_nothing(tmp_path, shm_dir, env):
    """Truncations at every record boundary, decompression bombs, chunks that lie about their size or CRC,
    unknown compressions, JSON nested to exhaust the stack, values of another type (never converted silently),
    sizes the file cannot hold: each is exit 1 with one line naming the file, no buffer, no file, and a peak
    RSS far below what the file asked for."""
    recs = {**hostile_mcaps(tmp_path), **hostile_h5s(tmp_path)}
    before = set(tmp_path.iterdir())
    for name, path in recs.items():
        r, rss = run_measured("replay", path, "--name", "out", "--as-fast-as-possible", env=env)
        assert "internal error" not in r.stderr, (name, r.stderr)
        one_line_error(r, path.name)
        assert rss < RSS_LIMIT_MB, (name, rss)
        assert not list(shm_dir.iterdir()), (name, list(shm_dir.iterdir()))
    assert set(tmp_path.iterdir()) == before


def test_mcap_replay_keeps_the_recorded_order_whatever_the_log_times(tmp_path, shm_dir, env):
    """Replay once ordered messages by log time: 99 of 100 rows of a recording with unordered timestamps came
    back at the wrong index. Rows come back in the order they were recorded."""
    pytest.importorskip("mcap")
    p = tmp_path / "unordered.mcap"
    times = np.random.default_rng(5).permutation(100) * 1000
    p.write_bytes(cbuf_mcap([row_json(i) for i in range(100)], log_times=times))
    r = run("replay", p, "--name", "back", "--as-fast-as-possible", env=env)
    assert r.returncode == 0, r.stderr
    with cbuf.open(shm_dir / "back") as reader:
        got = reader.last(100)
    assert list(got["a"]) == list(range(100)) and list(got["x"]) == [i / 3 for i in range(100)]


@pytest.mark.parametrize("fmt", [".npy", ".csv", ".parquet", ".h5", ".mcap"])
def test_sigterm_ends_a_recording_with_its_file_in_every_format(producer, tmp_path, fmt):
    """`timeout`, systemd and docker stop a recorder with SIGTERM: it used to die with status 143 and no file
    (.npy, .parquet) or no summary (.h5). Now SIGTERM ends it as Ctrl-C does: status 0, the summary line, a
    complete file that replays, with every row it read."""
    pytest.importorskip("pyarrow")
    pytest.importorskip("h5py")
    pytest.importorskip("mcap")
    import signal
    import time
    from cbuf import recording
    p = producer(capacity=1 << 16, name="buf")
    out = tmp_path / f"r{fmt}"
    rec = subprocess.Popen([sys.executable, "-m", "cbuf.cli", "record", p.path, "-o", out, "--from-oldest"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    p.cmd("write 5000")
    time.sleep(1.0)
    rec.send_signal(signal.SIGTERM)
    _, err = rec.communicate(timeout=30)
    assert rec.returncode == 0 and "recorded 5000 rows" in err and "Traceback" not in err, err
    data = recording.load(out).data
    assert len(data) == 5000 and list(data["index"]) == list(range(5000))
    assert sorted(x.name for x in tmp_path.iterdir() if not x.name.endswith(".cbuf.json")) == [out.name]


def test_parquet_fields_carry_each_columns_type_unit_and_doc(tmp_path):
    """Issue 29: units lived only in a JSON blob; pyarrow (a reader nobody here wrote) now shows each field's
    cbuf type, unit and doc, array elements included."""
    pq = pytest.importorskip("pyarrow.parquet")
    from cbuf import recording
    schema = {**PADDED, "columns": [dict(c, unit="V", doc="volts") if c["name"] == "v" else c
                                    for c in PADDED["columns"]]}
    out = tmp_path / "units.parquet"
    recording.save(out, rows(), recording.make_meta("x", schema, 0, 40, 0, 50, 0, [], []))
    fields = {f.name: f.metadata or {} for f in pq.read_schema(out)}
    assert fields["v[1]"] == {b"cbuf_type": b"int16[3]", b"unit": b"V", b"doc": b"volts"}
    assert fields["x"] == {b"cbuf_type": b"float64"}
    assert recording.load(out).data.tobytes() == rows().tobytes()


def split_set(folder: Path, fmt: str, set_id="a" * 32, ranges=((0, 50), (50, 100), (100, 150)), numbers=None):
    """Segments of one recording as `cbuf record --split-*` writes them: files run_NNNN<fmt>, each a whole
    recording of its rows, the same set id, numbered from 0."""
    from cbuf import recording
    folder.mkdir(exist_ok=True)
    out = []
    for k, (a, b) in enumerate(ranges):
        number = k if numbers is None else numbers[k]
        p = folder / f"run_{number:04d}{fmt}"
        data = rows(150)[a:b]
        recording.save(p, data, recording.make_meta("/dev/shm/src", PADDED, 0, 40, a, b - a, 0, [], [],
                                                    segment={"set": set_id, "number": number}))
        out.append(p)
    return out


@pytest.mark.parametrize("fmt", [".npy", ".csv", ".h5", ".mcap"])
def test_split_sets_with_gaps_overlaps_and_foreign_segments(tmp_path, shm_dir, env, fmt):
    """A set with a missing middle segment replays, naming the rows it held as lost (and the reader sees them
    lost); overlapping segments, a segment of another recording, the same segment twice, or a lone recording
    among segments: one line naming the file, no buffer made."""
    pytest.importorskip("h5py")
    pytest.importorskip("mcap")
    good = split_set(tmp_path / "good", fmt)
    r = run("replay", good[0], good[2], "--name", "gap", "--as-fast-as-possible", env=env)
    assert r.returncode == 0, r.stderr
    assert f"segment 1 of {good[0].name}'s set missing between {good[0].name} and {good[2].name}: rows 50..99 " \
           "(50 rows) lost" in r.stderr, r.stderr
    with cbuf.open(shm_dir / "gap", start="oldest") as back:
        res = back.read_new()
        assert (res.first, len(res.rows)) == (0, 50)
        res = back.read_new()
        assert res.lost_range == range(50, 100) and res.first == 100 and len(res.rows) == 50
    os.unlink(shm_dir / "gap")
    overlap = split_set(tmp_path / "overlap", fmt, ranges=((0, 50), (40, 100)))
    foreign = split_set(tmp_path / "foreign", fmt, set_id="b" * 32, ranges=((50, 100),), numbers=(1,))
    twice = tmp_path / "twice"
    twice.mkdir()
    (twice / f"copy{fmt}").write_bytes(good[1].read_bytes())
    for extra in (".cbuf.json",) if fmt == ".npy" else ():
        (twice / f"copy{fmt}{extra}").write_bytes(Path(str(good[1]) + extra).read_bytes())
    lone = npy_recording(tmp_path, "lone.npy") if fmt == ".npy" else None
    cases = [((overlap[0], overlap[1]), overlap[1], "overlap"),
             ((good[0], foreign[0]), foreign[0], "another recording"),
             ((good[0], good[1], twice / f"copy{fmt}"), "segment 1 twice", "keep one")]
    if lone:
        cases.append(((good[0], lone), lone.name, "not a segment"))
    before = sorted(tmp_path.rglob("*"))
    for files, *words in cases:
        r = run("replay", *files, "--name", "no", "--as-fast-as-possible", env=env)
        one_line_error(r, *words)
        assert not list(shm_dir.iterdir())
    assert sorted(tmp_path.rglob("*")) == before
