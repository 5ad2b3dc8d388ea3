"""HDF5 and MCAP recordings, each checked by a reader nobody here wrote: h5py and h5dump for HDF5, the npm
MCAP libraries (@mcap/core, @mcap/nodejs, @mcap/support) and the Python `mcap` reader for MCAP."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cbuf._core")
import cbuf  # noqa: E402
from cbuf import _core  # noqa: E402
from test_reader import checksums_ok  # noqa: E402

h5py = pytest.importorskip("h5py")
pytest.importorskip("mcap")

JS = Path(__file__).resolve().parents[1] / "js"
NODE_DIR = Path(sys.prefix) / "js"  # ./dev.sh installs tests/js/package.json's packages there

# A schema with every kind of column, units and docs, and a timestamp column for MCAP's log times.
SCHEMA = {"name": "fmt", "capacity": 4096, "row_size": 48, "columns": [
    {"name": "t", "type": "timestamp_ns", "offset": 0, "unit": "ns", "doc": "acquisition time"},
    {"name": "v", "type": "float32[3]", "offset": 8, "unit": "V", "doc": "three channels"},
    {"name": "ok", "type": "bool", "offset": 20},
    {"name": "label", "type": "string[8]", "offset": 21},
    {"name": "n", "type": "uint64", "offset": 32, "unit": "count"}]}


def cbuf_cmd(*args, ok=True, **kw):
    r = subprocess.run([sys.executable, "-m", "cbuf.cli", *map(str, args)], capture_output=True, text=True,
                       timeout=120, **kw)
    if ok:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


@pytest.fixture
def typed(shm_dir):
    """A Python-side producer of SCHEMA holding 100 rows: NaN, an infinity, strings, large integers."""
    p = _core.Producer(str(shm_dir / "fmt"), 48, 4096, json.dumps(SCHEMA), 0, replace_hint="")
    r = cbuf.open(p.path)
    rows = np.zeros(100, dtype=r.dtype)
    rows["t"] = 1_700_000_000_000_000_000 + np.arange(100) * 1000
    rows["v"] = np.random.default_rng(1).random((100, 3), dtype=np.float32)
    rows["v"][5, 1], rows["v"][6, 2] = np.nan, -np.inf
    rows["ok"] = np.arange(100) % 3 == 0
    rows["label"] = [f"row{i}".encode() for i in range(100)]
    rows["n"] = np.arange(100) + 2**40
    p.write_batch(rows)
    yield p, r.last(100)
    r.close()
    p.close()


# --- HDF5 -------------------------------------------------------------------------------------------------
def test_hdf5_recording_of_a_live_producer_is_the_buffer_byte_for_byte(producer, tmp_path):
    p = producer(capacity=1 << 16)
    p.cmd("write 5000")
    out = tmp_path / "live.h5"
    p.send("pace 50000 0")  # the producer keeps writing while it is recorded
    cbuf_cmd("record", p.path, "-o", out, "--from-oldest", "--rows", 20000)
    with cbuf.open(p.path) as r, h5py.File(out, "r") as f:  # h5py alone reads the file
        rows, index = f["rows"][()], f["row_index"][()]
        assert len(rows) == 20000 and f.attrs["rows"] == 20000
        assert list(index) == list(range(int(index[0]), int(index[0]) + 20000)) and index[0] == 0
        assert checksums_ok(rows).all() and list(rows["index"]) == list(index)
        assert rows.dtype.itemsize == r.row_size
        kept = r.last(r.capacity)  # what the buffer still holds of the recorded range is identical
        lo = int(kept["index"][0])
        assert lo < 20000 and rows[lo:].tobytes() == kept[:20000 - lo].tobytes()
        assert json.loads(f.attrs["schema_json"])["name"] == "checked" and f["lost"].shape == (0, 2)


def test_hdf5_carries_schema_units_and_docs_and_h5dump_reads_it(typed, tmp_path):
    p, written = typed
    out = tmp_path / "typed.h5"
    cbuf_cmd("record", p.path, "-o", out, "--from-oldest", "--rows", 100)
    with h5py.File(out, "r") as f:
        assert f["rows"][()].tobytes() == written.tobytes()
        a = f["rows"].attrs
        assert a["v.unit"] == "V" and a["v.doc"] == "three channels" and a["t.type"] == "timestamp_ns"
        assert json.loads(f.attrs["cbuf"])["fingerprint"] == 0
        assert f.attrs["first_index"] == 0 and f.attrs["last_index"] == 99 and f.attrs["epoch"] == 1
    if not shutil.which("h5dump"):
        pytest.skip("h5dump is not installed (Debian: hdf5-tools; ./dev.sh installs it)")
    d = subprocess.run(["h5dump", "-H", "-A", str(out)], capture_output=True, text=True, timeout=60)
    assert d.returncode == 0, d.stderr
    assert 'DATASET "rows"' in d.stdout and "H5T_COMPOUND" in d.stdout and "( 100 )" in d.stdout
    assert 'ATTRIBUTE "v.unit"' in d.stdout and '"V"' in d.stdout
    values = subprocess.run(["h5dump", "-d", "/rows", "-s", "7", "-c", "1", str(out)], capture_output=True,
                            text=True, timeout=60).stdout
    assert '"row7\\000' in values and str(1_700_000_000_000_007_000) in values  # NUL-padded, as stored


def test_hdf5_record_replay_record_is_identical(typed, tmp_path, shm_dir):
    p, written = typed
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    cbuf_cmd("record", p.path, "-o", a, "--from-oldest", "--rows", 100)
    cbuf_cmd("replay", a, "--name", shm_dir / "again", "--as-fast-as-possible")
    cbuf_cmd("record", shm_dir / "again", "-o", b, "--from-oldest", "--rows", 100)
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert fa["rows"][()].tobytes() == fb["rows"][()].tobytes() == written.tobytes()


def test_a_killed_hdf5_recorder_leaves_a_partial_file_h5py_opens(producer, tmp_path):
    p = producer(capacity=1 << 16)
    p.send("pace 1000000 20")  # rows keep coming, about 40 000 a second, for longer than the test
    out = tmp_path / "killed.h5"
    rec = subprocess.Popen([sys.executable, "-m", "cbuf.cli", "record", p.path, "-o", out, "--from-oldest"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(2.0)  # rows arrive throughout; the recorder flushes every 0.5 s
        assert rec.poll() is None, rec.stderr.read()
    finally:
        rec.send_signal(signal.SIGKILL)
        rec.wait()
    assert not out.exists()  # the name is given to a complete recording only
    with h5py.File(tmp_path / ".killed.h5.partial.h5", "r") as f:
        rows = f["rows"][()]
        assert len(rows) > 0 and checksums_ok(rows).all()
        assert len(f["row_index"]) == len(rows)  # written together, flushed together
        assert "rows" not in f.attrs  # the summary is written only at the end


# --- MCAP -------------------------------------------------------------------------------------------------
def node_read(path: Path) -> dict:
    if not shutil.which("node") or not (NODE_DIR / "node_modules" / "@mcap" / "core").is_dir():
        pytest.skip(f"node or the npm MCAP packages are missing ({NODE_DIR}; ./dev.sh installs them)")
    r = subprocess.run(["node", str(JS / "read_mcap.mjs"), str(path)], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "CBUF_NODE_DIR": str(NODE_DIR)})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_mcap_json_is_read_by_the_npm_reader_with_channel_schema_and_timestamps(typed, tmp_path):
    p, written = typed
    out = tmp_path / "typed.mcap"
    cbuf_cmd("record", p.path, "-o", out, "--from-oldest", "--rows", 100, "--encoding", "json")
    d = node_read(out)
    assert d["messageCount"] == "100" and d["library"].startswith("foxglove-sdk")
    (rows_ch,) = [c for c in d["channels"].values() if c["topic"] == "/cbuf/fmt"]
    assert rows_ch["messageEncoding"] == "json" and rows_ch["schemaEncoding"] == "jsonschema"
    assert rows_ch["schemaName"] == "fmt" and rows_ch["count"] == 100
    props = rows_ch["schema"]["properties"]
    assert props["v"]["type"] == "array" and "[V]" in props["v"]["description"]
    assert [int(m["logTime"]) for m in rows_ch["rows"]] == [int(t) for t in written["t"]]  # exact (bigint)
    # the timestamp column itself survives JavaScript's JSON.parse: beyond 2^53 it is a decimal string
    assert [m["data"]["t"] for m in rows_ch["rows"]] == [str(int(t)) for t in written["t"]]
    assert props["t"]["type"] == ["integer", "string"]
    assert [m["data"]["row_index"] for m in rows_ch["rows"]] == list(range(100))
    m5 = rows_ch["rows"][5]["data"]
    assert m5["label"] == "row5" and m5["v"][1] == "nan" and rows_ch["rows"][6]["data"]["v"][2] == "-inf"
    assert m5["v"][0] == pytest.approx(float(written["v"][5, 0])) and m5["ok"] is False
    assert [m["name"] for m in d["metadata"]] == ["cbuf"]
    # nothing lost: no lost message (the MCAP writer records a channel with its first message)
    assert sum(c["count"] for c in d["channels"].values() if c["topic"] == "/cbuf/fmt/lost") == 0


@pytest.mark.parametrize("encoding", ["cdr", "json"])
def test_mcap_rows_replay_identically(typed, tmp_path, shm_dir, encoding):
    p, written = typed
    out = tmp_path / "typed.mcap"
    cbuf_cmd("record", p.path, "-o", out, "--from-oldest", "--rows", 100, "--encoding", encoding)
    # replay turns it back into rows byte for byte: floats (NaN and infinities included) survive either encoding
    cbuf_cmd("replay", out, "--name", shm_dir / "from_mcap", "--as-fast-as-possible")
    with cbuf.open(shm_dir / "from_mcap") as r:
        assert r.last(100).tobytes() == written.tobytes()


def test_mcap_json_rows_decode_with_the_python_mcap_reader(typed, tmp_path):
    from mcap.reader import make_reader
    p, written = typed
    out = tmp_path / "typed.mcap"
    cbuf_cmd("record", p.path, "-o", out, "--from-oldest", "--rows", 100, "--encoding", "json")
    with open(out, "rb") as f:
        msgs = [(ch.topic, msg.log_time, json.loads(msg.data)) for _, ch, msg in make_reader(f).iter_messages()]
    assert len(msgs) == 100 and all(topic == "/cbuf/fmt" for topic, _, _ in msgs)
    for i, (_, log_time, m) in enumerate(msgs):
        assert log_time == int(written["t"][i]) == int(m["t"]) and m["n"] == int(written["n"][i])
        assert m["label"] == written["label"][i].decode() and m["ok"] == bool(written["ok"][i])


def record_through_a_stall(p, out, burst: int, before: int = 0) -> str:
    """`cbuf record --until-closed` of producer p into out, stopped (SIGSTOP) while the producer writes `burst`
    rows - it is lapped and loses some - after `before` rows it records as usual; the producer then closes.
    Returns the recorder's stderr."""
    rec = subprocess.Popen([sys.executable, "-m", "cbuf.cli", "record", p.path, "-o", out, "--until-closed"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    if before:
        p.cmd(f"write {before}")
        time.sleep(0.5)
    os.kill(rec.pid, signal.SIGSTOP)  # the recorder stalls while the producer laps it
    p.cmd(f"write {burst}")
    os.kill(rec.pid, signal.SIGCONT)
    p.cmd("close")
    _, err = rec.communicate(timeout=60)
    assert rec.returncode == 0, err
    return err


def test_mcap_records_lost_rows_as_messages(producer, tmp_path):
    p = producer(capacity=256)
    out = tmp_path / "lossy.mcap"
    err = record_through_a_stall(p, out, 5000)
    from mcap.reader import make_reader
    with open(out, "rb") as f:
        lost = [json.loads(m.data) for _, ch, m in make_reader(f).iter_messages() if ch.topic.endswith("/lost")]
    assert lost and sum(x["count"] for x in lost) == int(err.split("lost ")[-1].split()[0])


# --- missing packages -------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix,module,extra", [(".h5", "h5py", "hdf5"), (".mcap", "mcap", "mcap"),
                                                 ("", "foxglove", "foxglove")])
def test_a_missing_package_is_one_line_naming_the_extra(typed, tmp_path, suffix, module, extra):
    p, _ = typed
    blocker = tmp_path / "blocker"
    (blocker / module).mkdir(parents=True)
    (blocker / module / "__init__.py").write_text(f"raise ImportError('{module} is not installed')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])}
    args = ("record", p.path, "-o", tmp_path / f"x{suffix}", "--rows", 1) if suffix else ("foxglove", p.path)
    r = cbuf_cmd(*args, ok=False, env=env)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert f"pip install 'cbuf[{extra}]'" in r.stderr and "Traceback" not in r.stderr
    assert not suffix or not (tmp_path / f"x{suffix}").exists()


# --- Foxglove live view -----------------------------------------------------------------------------------
WRITER = """
import json, sys, time
import numpy as np
import cbuf
from cbuf import _core
schema = {"name": "live", "capacity": 4096, "row_size": 16, "columns": [
    {"name": "t", "type": "timestamp_ns", "offset": 0, "unit": "ns"},
    {"name": "x", "type": "float64", "offset": 8, "unit": "m", "doc": "position"}]}
p = _core.Producer(sys.argv[1], 16, 4096, json.dumps(schema), 0, replace_hint="")
row = np.zeros(1, dtype=cbuf.open(p.path).dtype)
print("ready", flush=True)
offset = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
for i in range(int(sys.argv[2])):
    row["t"], row["x"] = time.time_ns(), offset + i * 0.5
    p.write_batch(row)
    time.sleep(0.001)
p.close()
"""


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_foxglove_server_streams_decimated_rows_to_the_npm_client_and_stops_on_ctrl_c(shm_dir):
    pytest.importorskip("foxglove")
    if not shutil.which("node") or not (NODE_DIR / "node_modules" / "@foxglove" / "ws-protocol").is_dir():
        pytest.skip(f"node or @foxglove/ws-protocol is missing ({NODE_DIR}; ./dev.sh installs them)")
    path, port = shm_dir / "live", _free_port()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "20000"], stdout=subprocess.PIPE, text=True)
    server = None
    try:
        assert writer.stdout.readline().strip() == "ready"
        server = subprocess.Popen([sys.executable, "-m", "cbuf.cli", "foxglove", path, "--port", str(port), "--max-rate",
                                   "20"], stderr=subprocess.PIPE, text=True)
        assert "serving" in server.stderr.readline()
        r = subprocess.run(["node", str(JS / "foxglove_client.mjs"), f"ws://127.0.0.1:{port}", "/cbuf/live", "6"],
                           capture_output=True, text=True, timeout=60, env={**os.environ, "CBUF_NODE_DIR": str(NODE_DIR)})
        assert r.returncode == 0, r.stderr
        lines = [json.loads(x) for x in r.stdout.splitlines()]
        (adv,) = [x["advertise"] for x in lines if "advertise" in x]
        (ch,) = [c for c in adv if c["topic"] == "/cbuf/live"]
        # the encoding of MCAP recordings: the row's bytes as cdr, its OMG IDL with units and docs
        assert ch["encoding"] == "cdr" and ch["schemaEncoding"] == "omgidl" and ch["schemaName"] == "cbuf::live"
        assert '@unit("m") double x;  // position' in ch["schema"]
        assert "/cbuf/live/stats" in [c["topic"] for c in adv]
        msgs = [x for x in lines if "message" in x]
        assert len(msgs) == 6
        for m in msgs:  # each row decodes to what the producer wrote at that index
            assert m["message"]["x"] == int(m["message"]["row_index"]) * 0.5
        stamps = [int(m["timestamp"]) for m in msgs]
        assert stamps == sorted(stamps) and (stamps[-1] - stamps[0]) / 1e9 >= 5 * 0.05 * 0.8  # <= 20 rows/s
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=10) == 0
        assert "stopped" in server.stderr.read()
    finally:
        for proc in (server, writer):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_foxglove_server_follows_a_producer_restart(shm_dir):
    pytest.importorskip("foxglove")
    if not shutil.which("node") or not (NODE_DIR / "node_modules" / "@foxglove" / "ws-protocol").is_dir():
        pytest.skip(f"node or @foxglove/ws-protocol is missing ({NODE_DIR}; ./dev.sh installs them)")
    path, port = shm_dir / "live", _free_port()
    py = sys.executable
    # Epoch 1 writes x = 0, 0.5, ... for about 1.5 s and closes; epoch 2 takes the name and writes x from 1000.
    script = f"{py} -c '{WRITER}' {path} 1500 0 && {py} -c '{WRITER}' {path} 5000 1000"
    writer = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True)
    server = None
    try:
        assert writer.stdout.readline().strip() == "ready"
        server = subprocess.Popen([py, "-m", "cbuf.cli", "foxglove", path, "--port", str(port), "--max-rate", "20"],
                                  stderr=subprocess.PIPE, text=True)
        assert "serving" in server.stderr.readline()
        r = subprocess.run(["node", str(JS / "foxglove_client.mjs"), f"ws://127.0.0.1:{port}", "/cbuf/live", "50"],
                           capture_output=True, text=True, timeout=60, env={**os.environ, "CBUF_NODE_DIR": str(NODE_DIR)})
        assert r.returncode == 0, r.stderr
        xs = [json.loads(x)["message"]["x"] for x in r.stdout.splitlines() if '"message"' in x]
        assert len(xs) == 50
        assert any(x < 1000 for x in xs) and any(x >= 1000 for x in xs), xs  # both epochs, on one channel
        assert xs.index(next(x for x in xs if x >= 1000)) > 0 and all(x >= 1000 for x in xs[xs.index(
            next(x for x in xs if x >= 1000)):])  # epoch 2 after epoch 1, never mixed
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=10) == 0
    finally:
        os.killpg(writer.pid, signal.SIGKILL)  # the shell and whichever writer it runs
        writer.wait()
        if server is not None and server.poll() is None:
            server.kill()
            server.wait()


@pytest.mark.parametrize("suffix", [".h5", ".mcap", ".npy", ".csv"])
def test_replay_keeps_the_recorded_indices_and_the_losses(producer, tmp_path, shm_dir, suffix):
    """Issue 29: replay renumbered rows from 0. Rows keep their index everywhere: a replay starts at the first
    recorded index, and the rows lost while recording are lost rows of the replayed buffer too (exact ranges);
    --renumber gives the old numbering."""
    p = producer(capacity=256)
    p.cmd("write 100")
    out = tmp_path / f"lossy{suffix}"
    err = record_through_a_stall(p, out, 2000, before=50)
    assert "lost 0 rows" not in err, err
    cbuf_cmd("replay", out, "--name", shm_dir / "again", "--as-fast-as-possible")
    with cbuf.open(shm_dir / "again", start=0) as r:
        got, lost = [], []
        while True:
            b = r.read_new()
            if b.lost:
                lost.append(b.lost_range)
            if not len(b.rows):
                break
            got += b.rows["index"].tolist()
            assert list(b.rows["index"]) == list(range(b.first, b.first + len(b.rows)))  # at their indices
    assert got[0] == 100 and lost[0] == range(0, 100) and len(lost) >= 2  # before the recording, then its gap
    assert len(got) + sum(len(x) for x in lost) == 2150
    cbuf_cmd("replay", out, "--name", shm_dir / "renumbered", "--as-fast-as-possible", "--renumber")
    with cbuf.open(shm_dir / "renumbered", start=0) as r:
        b = r.read_new()
        assert b.first == 0 and not b.lost and list(b.rows["index"][:2]) == got[:2]
