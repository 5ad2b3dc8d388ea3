"""No input makes a `cbuf` subcommand print a traceback or leave debris.

A corpus of bad inputs - damaged recordings of every format, files that are not buffers, bad arguments, full
and read-only file systems - runs through the subcommands: each ends with exit status 1, one line on stderr
that names the file, and no file or buffer left behind. And record -> replay -> record is byte-identical for a
schema with padding inside the row, in .npy, .csv and .parquet.
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


@pytest.mark.parametrize("fmt", [".npy", ".csv", ".parquet"])
def test_record_replay_record_is_byte_identical_for_a_padded_schema(tmp_path, shm_dir, env, fmt):
    pytest.importorskip("pyarrow")
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
