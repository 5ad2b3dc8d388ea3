"""The `cbuf` command, each subcommand against a real producer process; output parsed and checked."""
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
from test_reader import checksums_ok  # noqa: E402


def cbuf_cmd(*args, check=True, **kw):
    r = subprocess.run([sys.executable, "-m", "cbuf.cli", *map(str, args)], capture_output=True, text=True,
                       timeout=60, **kw)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def one_line_error(r, *words):
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


def test_ls_and_info(producer, shm_dir):
    p = producer(capacity=256, name="alpha")
    p.cmd("write 40")
    (shm_dir / "not-a-buffer").write_bytes(b"x" * 1000)
    p.send("pace 2000 200")  # writing while ls measures the rate
    time.sleep(0.05)
    entries = json.loads(cbuf_cmd("ls", shm_dir, "--json").stdout)
    assert [e["name"] for e in entries] == ["alpha"]  # the foreign file is not listed
    e = entries[0]
    assert e["state"] == "live" and e["schema"] == "checked" and e["capacity"] == 256 and e["row_size"] == 64
    assert e["rows"] >= 40 and e["rate_rows_per_s"] > 0 and e["producer_pid"] == p.p.pid
    table = cbuf_cmd("ls", shm_dir).stdout.splitlines()
    assert table[0].split()[:4] == ["NAME", "STATE", "SCHEMA", "ROWS"] and table[1].split()[:3] == ["alpha", "live", "checked"]

    info = json.loads(cbuf_cmd("info", p.path, "--json").stdout)
    assert info["header"]["capacity"] == 256 and info["header"]["slot_size"] == 72
    assert info["memory"]["page_size"] == 4096 and info["memory"]["mlocked"] is False
    assert [c["name"] for c in info["schema"]["columns"]] == ["index", "payload", "checksum"]
    text = cbuf_cmd("info", p.path).stdout
    assert "payload   uint64[6]  8       48" in text and f"pid {p.p.pid}" in text


def test_tail_formats_and_columns(producer):
    p = producer(capacity=256)
    p.cmd("write 30")
    lines = cbuf_cmd("tail", p.path, "-n", "3", "--columns", "index,checksum").stdout.splitlines()
    assert lines[0].split() == ["row_index", "index", "checksum"]
    assert [int(line.split()[0]) for line in lines[1:]] == [27, 28, 29]
    csv = cbuf_cmd("tail", p.path, "-n", "2", "--csv").stdout.splitlines()
    payload = [f"payload[{j}]" for j in range(6)]
    assert csv[0].split(",") == ["row_index", "index", *payload, "checksum"] and csv[2].startswith("29,29,")
    recs = [json.loads(x) for x in cbuf_cmd("tail", p.path, "-n", "2", "--json").stdout.splitlines()]
    assert [r["row_index"] for r in recs] == [28, 29] and len(recs[0]["payload"]) == 6


def test_tail_json_writes_non_finite_floats_and_large_integers_as_every_json_output_does(shm_dir):
    """One rule for JSON rows (issues 28, 29): NaN and infinities as the strings "nan", "inf", "-inf" - in
    `cbuf tail --json` as in recordings and MCAP (it used to write null here, which cannot be read back) - and
    64-bit integers beyond 2^53 - 1 as decimal strings, which JavaScript's JSON.parse cannot round."""
    schema = {"name": "nf", "capacity": 16, "columns": [{"name": "x", "type": "float64"}, {"name": "v", "type": "float32[3]"},
                                        {"name": "big", "type": "uint64"}, {"name": "t", "type": "timestamp_ns"}]}
    with cbuf.create(schema, name=str(shm_dir / "nf"), keep=False) as p:
        p.write(x=float("nan"), v=[float("inf"), -float("inf"), 1.5], big=2**63 + 5, t=1_733_500_000_123_456_789)
        p.write(x=2.5, v=[0, 0, 0], big=7, t=2**53 - 1)
        recs = [json.loads(x) for x in cbuf_cmd("tail", p.path, "-n", "2", "--json").stdout.splitlines()]
    assert [(r["x"], r["v"], r["big"], r["t"]) for r in recs] == [
        ("nan", ["inf", "-inf", 1.5], "9223372036854775813", "1733500000123456789"), (2.5, [0, 0, 0], 7, 2**53 - 1)]


def test_array_columns_have_one_name_in_tail_csv_recordings_and_pandas(producer, tmp_path):
    """payload[0], payload[1], ...: the same flat names wherever an array column is spread over columns."""
    p = producer(capacity=256)
    p.cmd("write 5")
    tail = cbuf_cmd("tail", p.path, "-n", "5", "--csv").stdout.splitlines()
    cbuf_cmd("record", p.path, "-o", tmp_path / "r.csv", "--from-oldest", "--rows", "5")
    recorded = (tmp_path / "r.csv").read_text().splitlines()
    assert tail[0].split(",")[1:] == recorded[1].split(",")
    assert [line.split(",")[1:] for line in tail[1:]] == [line.split(",") for line in recorded[2:]]
    pytest.importorskip("pandas")
    assert list(cbuf.open(p.path).to_pandas().columns) == recorded[1].split(",")


def test_tail_indices_match_rows_while_the_producer_writes(producer):
    p = producer(capacity=4096)
    p.send("pace 200000 0")  # writing throughout
    time.sleep(0.05)
    for _ in range(5):  # the helper's rows carry their own index: it must equal the row index tail prints
        recs = [json.loads(x) for x in cbuf_cmd("tail", p.path, "-n", "50", "--json").stdout.splitlines()]
        assert len(recs) == 50 and all(rec["row_index"] == rec["index"] for rec in recs)
        csv = cbuf_cmd("tail", p.path, "-n", "50", "--csv").stdout.splitlines()[1:]
        assert len(csv) == 50 and all(line.split(",")[0] == line.split(",")[1] for line in csv)


def test_tail_follow_reports_loss_inline_and_ends_when_the_producer_closes(producer):
    p = producer(capacity=16)
    t = subprocess.Popen([sys.executable, "-m", "cbuf.cli", "tail", p.path, "-f", "--until-closed", "-n", "0", "--csv"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    t.send_signal(signal.SIGSTOP)  # a tail that cannot keep up
    p.cmd("write 100")
    t.send_signal(signal.SIGCONT)
    time.sleep(0.5)
    p.cmd("write 3")
    p.cmd("close")
    out, err = t.communicate(timeout=20)
    assert t.returncode == 0, err
    notes = [line for line in out.splitlines() if line.startswith("# lost")]
    assert notes and "overwrote" in notes[0]
    lost = sum(int(n.split()[2]) for n in notes)
    got = [int(line.split(",")[0]) for line in out.splitlines()[1:] if line and not line.startswith("#")]
    assert got == sorted(got) and len(got) + lost == 103
    assert got[-1] == 102 and out.splitlines()[-1].startswith("# producer closed")


def test_tail_survives_the_file_disappearing(producer):
    p = producer(capacity=256)
    t = subprocess.Popen([sys.executable, "-m", "cbuf.cli", "tail", p.path, "-f", "--until-closed", "-n", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    os.unlink(p.path)
    p.cmd("write 2")
    p.p.kill()
    out, err = t.communicate(timeout=20)
    assert t.returncode == 0 and "Traceback" not in err
    assert out.splitlines()[-1].startswith("# producer dead")


def test_stat_measures_rate_and_liveness(producer):
    p = producer(capacity=256)
    p.send("pace 5000 100")
    lines = cbuf_cmd("stat", p.path, "-i", "0.3", "--count", "2").stdout.splitlines()
    assert len(lines) == 2
    rate = float(lines[1].split()[0])
    assert rate > 100 and "producer live" in lines[1]


@pytest.mark.parametrize("fmt", ["npy", "csv"])
def test_record_replay_record_gives_identical_data(producer, shm_dir, tmp_path, fmt):
    p = producer(capacity=512)
    p.cmd("write 300")
    a, b = tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
    r = cbuf_cmd("record", p.path, "-o", a, "--rows", 300, "--from-oldest")
    assert "recorded 300 rows" in r.stderr and "lost 0 rows" in r.stderr
    replayed = shm_dir / "replayed"
    r = cbuf_cmd("replay", a, "--name", replayed, "--as-fast-as-possible")
    assert r.stdout.strip() == str(replayed)
    cbuf_cmd("record", replayed, "-o", b, "--rows", 300, "--from-oldest")
    if fmt == "npy":
        x, y = np.load(a), np.load(b)
        assert x.tobytes() == y.tobytes() and checksums_ok(x).all() and list(x["index"]) == list(range(300))
        meta = json.loads((tmp_path / "a.npy.cbuf.json").read_text())
        assert json.loads(meta["schema_json"])["name"] == "checked" and meta["lost"] == 0
    else:
        assert a.read_text().splitlines()[1:] == b.read_text().splitlines()[1:]
    import cbuf
    with cbuf.open(replayed) as rr:
        assert rr.state == "closed" and rr.head == 300 and checksums_ok(rr.last(300)).all()


def test_replay_paces_by_the_timestamp_column(tmp_path, shm_dir):
    import cbuf
    n = 41
    dtype = np.dtype([("t", "<i8"), ("v", "<f8")])
    data = np.zeros(n, dtype=dtype)
    data["t"] = np.arange(n) * 20_000_000  # 20 ms apart: 0.8 s in all
    data["v"] = np.arange(n)
    np.save(tmp_path / "r.npy", data)
    schema = {"name": "paced", "capacity": 64, "row_size": 16,
              "columns": [{"name": "t", "type": "timestamp_ns", "offset": 0}, {"name": "v", "type": "float64", "offset": 8}]}
    (tmp_path / "r.npy.cbuf.json").write_text(json.dumps({"schema_json": json.dumps(schema), "fingerprint": 0,
                                                           "row_size": 16}))
    t0 = time.monotonic()
    cbuf_cmd("replay", tmp_path / "r.npy", "--name", shm_dir / "paced")
    slow = time.monotonic() - t0
    t0 = time.monotonic()
    cbuf_cmd("replay", tmp_path / "r.npy", "--name", shm_dir / "paced", "--replace", "--rate", "4")
    fast = time.monotonic() - t0
    # Pacing can make a replay late, never early: lower bounds hold on any machine; the difference (0.6 s of
    # recorded time saved at 4x) is far above start-up jitter.
    assert slow >= 0.8 and fast >= 0.2
    assert slow - fast > 0.3
    with cbuf.open(shm_dir / "paced") as r:
        assert list(r.last(n)["v"]) == list(range(n)) and r.header["epoch"] == 2


def test_plot_save_writes_a_png_with_one_subplot_per_unit(producer, tmp_path):
    pytest.importorskip("matplotlib")
    p = producer(capacity=256)
    p.cmd("write 100")
    out = tmp_path / "plot.png"
    cbuf_cmd("plot", p.path, "--columns", "index,payload", "--save", out)
    png = out.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1000, 580)  # two subplots: index and payload have no unit, so one axis each


def test_gc_removes_only_dead_producers_buffers(producer, shm_dir):
    live = producer(capacity=256, name="live")
    dead = producer(capacity=256, name="dead")
    dead.send("exit")
    dead.p.wait()
    (shm_dir / "foreign").write_bytes(b"y" * 4096)
    owned_by_other = producer(capacity=256, name="other")
    owned_by_other.send("exit")
    owned_by_other.p.wait()
    if os.geteuid() == 0:
        os.chown(shm_dir / "other", 65534, 65534)
    out = cbuf_cmd("gc", shm_dir, "--dry-run").stdout
    assert "would remove" in out and (shm_dir / "dead").exists()
    out = cbuf_cmd("gc", shm_dir).stdout
    assert f"removed {shm_dir / 'dead'}" in out
    assert not (shm_dir / "dead").exists()
    assert (shm_dir / "live").exists() and (shm_dir / "foreign").exists()
    if os.geteuid() == 0:
        assert (shm_dir / "other").exists()  # someone else's file is never touched
    live.cmd("write 1")


def test_bad_input_is_one_clear_line(producer, shm_dir, tmp_path):
    p = producer(capacity=256, name="present")
    one_line_error(cbuf_cmd("tail", "presnt", check=False, env={**os.environ, "CBUF_DIR": str(shm_dir)}),
                   "no buffer 'presnt'", "did you mean 'present'")
    (shm_dir / "junk").write_bytes(b"z" * 4096)
    one_line_error(cbuf_cmd("info", shm_dir / "junk", check=False), "not a cbuf buffer")
    one_line_error(cbuf_cmd("tail", p.path, "--columns", "nope", check=False), "unknown column 'nope'", "index, payload")
    one_line_error(cbuf_cmd("record", p.path, "-o", tmp_path / "missing" / "x.npy", "--rows", "1", check=False),
                   "does not exist")
    one_line_error(cbuf_cmd("record", "nope", "-o", tmp_path / "y.npy", "--rows", "1", "--wait", "0", check=False,
                            env={**os.environ, "CBUF_DIR": str(shm_dir)}), "no buffer 'nope'")
    assert not list(tmp_path.glob("*y.npy*"))  # a failed recording leaves no file behind
    one_line_error(cbuf_cmd("replay", tmp_path / "none.npy", check=False), "no such file")
    if os.geteuid() == 0:  # as an unprivileged user, in a forked child (it cannot run the venv's python)
        import cbuf.cli
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            sys.stderr = open(wfd, "w")  # pytest has replaced sys.stderr; write to the pipe instead
            os.setgid(65534)
            os.setuid(65534)
            code = cbuf.cli.main(["info", p.path])
            sys.stderr.flush()
            os._exit(code)
        os.close(wfd)
        err = os.read(rfd, 65536).decode()
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 1
        assert err.count("\n") == 1 and "permission denied" in err and "Traceback" not in err


def test_the_quick_start_demo_runs_with_its_python_consumer(test_bin, shm_dir):
    """./dev.sh demo: the C++ demo producer, and examples/demo_reader.py reading it live."""
    examples = test_bin.parent / "examples"
    if not (examples / "cbuf_demo").exists():
        pytest.skip("examples were not built")
    name = shm_dir / "demo"
    demo = subprocess.Popen([examples / "cbuf_demo", "3", name], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.environ.get("PYTHONPATH", ""), str(examples / "python")])}
        script = Path(__file__).resolve().parents[2] / "examples" / "demo_reader.py"
        r = subprocess.run([sys.executable, script, name, "2.5"], capture_output=True, text=True, env=env, timeout=30)
        assert r.returncode == 0, r.stderr
        received = int(r.stdout.split("received ")[1].split()[0])
        assert received > 0 and "lost" in r.stdout and "channel[0..3]" in r.stdout
        assert "followed the restart (epoch 1 -> 2)" in r.stdout  # the producer restarts 1.5 s in
    finally:
        out, _ = demo.communicate(timeout=30)
    assert demo.returncode == 0 and "every row accounted for" in out


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("command", ["tail -f", "stat", "foxglove", "bridge pub", "waiting tail -f"])
def test_sigterm_and_ctrl_c_stop_every_long_running_command_with_status_0(producer, command, tmp_path):
    """Issue 33: systemd, docker and timeout stop with SIGTERM; people with Ctrl-C. Either ends the command
    within a second - streaming, or still waiting for its buffer - with status 0 and no traceback."""
    if command == "foxglove":
        pytest.importorskip("foxglove")
    if command == "bridge pub":
        pytest.importorskip("zenoh")
    p = producer(capacity=4096, name="buf")
    p.send("pace 1000000 50")  # rows keep coming
    target = p.path if command != "waiting tail -f" else str(tmp_path / "not_yet")
    args = {"tail -f": ["tail", "-f", target], "waiting tail -f": ["tail", "-f", target], "stat": ["stat", target],
            "foxglove": ["foxglove", target, "--port", str(_free_port())],
            "bridge pub": ["bridge", "pub", target, "--key", "t/stop", "--listen", f"tcp/127.0.0.1:{_free_port()}"]}
    for sig in (signal.SIGTERM, signal.SIGINT):
        proc = subprocess.Popen([sys.executable, "-m", "cbuf.cli", *args[command]], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        assert proc.poll() is None, proc.stderr.read()
        t0 = time.monotonic()
        proc.send_signal(sig)
        try:
            _, err = proc.communicate(timeout=5)
        finally:
            proc.kill()
        assert proc.returncode == 0 and time.monotonic() - t0 < 1.5, (sig, proc.returncode, err)
        assert "Traceback" not in err, err
