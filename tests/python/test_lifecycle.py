"""Lifecycle from Python and the `cbuf` command: readers and following commands that start before their
producer, a reader that follows 100 producer restarts, restart by default, gc of closed buffers."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

cbuf = pytest.importorskip("cbuf")
pytest.importorskip("cbuf._core")

from test_reader import checksums_ok  # noqa: E402


def cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "cbuf.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_reader_may_start_before_the_producer(producer, shm_dir):
    threading.Timer(0.3, lambda: producer(capacity=64, name="late").cmd("write 5")).start()
    t0 = time.monotonic()
    r = cbuf.open(shm_dir / "late", attach_timeout=10, start=0)
    assert 0.2 < time.monotonic() - t0 < 5  # woken when the name appeared
    assert r.wait(5) and len(r.read_new().rows) >= 1
    with pytest.raises(cbuf.NotFoundError, match="after waiting 200 ms"):
        cbuf.open(shm_dir / "never", attach_timeout=0.2)


def test_python_reader_follows_100_restarts(producer, shm_dir):
    path = shm_dir / "life"
    epochs = 100
    p = producer(capacity=64, name="life")
    r = cbuf.open(path, follow=True, start=0)
    written = {}
    seen = {}  # epoch -> [received, lost, restarts reported]
    for e in range(1, epochs + 1):
        n = 10 + (e * 37) % 150  # some epochs lap the reader
        assert p.cmd(f"write {n}") == f"ok {n}"
        written[e] = n
        if e % 3 == 0 and e != epochs:
            p.send("exit")  # gone without closing: dead
        else:
            p.cmd("close")
            p.p.stdin.close()
        p.p.wait()
        if e < epochs:
            p = producer(capacity=64, name="life")  # takes over the name by default: epoch e + 1
        acc = seen.setdefault(e, [0, 0, 0])
        while True:  # read epoch e to its end; the batch that moves on reports it
            res = r.read_new()
            if res.restart:
                assert res.restart.old_epoch == e and res.restart.new_epoch == e + 1
                assert res.restart.old_end == acc[0] + acc[1] and res.restart.new_start == 0
                assert not res.restart.schema_changed and r.epoch == e + 1
                seen.setdefault(e + 1, [0, 0, 0])[2] += 1
                break
            acc[1] += res.lost
            if len(res.rows):
                assert res.first == acc[0] + acc[1]
                assert (res.rows["index"] == np.arange(res.first, res.first + len(res.rows))).all()
                assert checksums_ok(res.rows).all()
                acc[0] += len(res.rows)
            elif e == epochs and r.state != "live" and r.cursor >= r.head:
                break
            else:
                r.wait(0.05)
    for e in range(1, epochs + 1):
        received, lost, restarts = seen[e]
        assert received + lost == written[e], e
        assert restarts == (0 if e == 1 else 1)
    assert not r.finished  # a following reader is never finished: it waits for the next producer
    r.close()


def test_following_cli_commands_wait_for_the_buffer_and_end_cleanly_on_ctrl_c(producer, shm_dir, tmp_path):
    env = {**os.environ, "CBUF_DIR": str(shm_dir), "MPLBACKEND": "Agg"}
    procs = {
        "tail": cli("tail", "-f", "w", env=env),
        "stat": cli("stat", "w", "-i", "0.2", env=env),
        "record": cli("record", "w", "-o", tmp_path / "w.npy", "--duration", "60", env=env),
        "plot": cli("plot", "w", env=env),
    }
    for name, t in procs.items():  # each says it waits, once, before the buffer exists
        assert t.stderr.readline() == f"cbuf {name}: waiting for w to appear; Ctrl-C to stop\n", name
    p = producer(capacity=256, name="w")
    time.sleep(1.0)
    p.cmd("write 20")
    time.sleep(1.0)
    for name, t in procs.items():
        if name != "plot":
            t.send_signal(signal.SIGINT)
    for name, t in procs.items():
        out, err = t.communicate(timeout=30)
        assert "Traceback" not in err and "waiting" not in err, (name, err)
        assert t.returncode in ((0,) if name == "plot" else (0, 130)), (name, t.returncode, err)
        if name == "tail":
            assert [int(line.split()[0]) for line in out.splitlines()[1:]] == list(range(20))
        if name == "record":
            assert "recorded 20 rows" in err and len(np.load(tmp_path / "w.npy")) == 20


def test_tail_f_follows_a_restart(producer, shm_dir):
    p = producer(capacity=256, name="t")
    p.cmd("write 3")
    t = cli("tail", "-f", "-n", "0", shm_dir / "t")
    time.sleep(1.0)
    p.cmd("write 2")
    p.cmd("close")
    p2 = producer(capacity=256, name="t")
    time.sleep(0.5)
    p2.cmd("write 2")
    time.sleep(1.0)
    t.send_signal(signal.SIGINT)
    out, err = t.communicate(timeout=20)
    assert "Traceback" not in err
    lines = out.splitlines()
    note = "# producer restarted: epoch 1 ended at row 5, epoch 2 starts at row 0"
    assert note in lines
    assert [int(x.split()[0]) for x in lines if not x.startswith(("#", "row_index"))] == [3, 4, 0, 1]
    assert lines.index(note) == 3


def test_gc_closed_and_ls_summary(producer, shm_dir):
    for name in ("closed1", "closed2"):
        p = producer(capacity=256, name=name)
        p.cmd("close")
    live = producer(capacity=256, name="live")
    out = subprocess.run([sys.executable, "-m", "cbuf.cli", "ls", shm_dir], capture_output=True, text=True).stdout
    assert "2 closed or dead buffer(s) hold" in out and "cbuf gc --closed" in out
    out = subprocess.run([sys.executable, "-m", "cbuf.cli", "gc", shm_dir], capture_output=True, text=True).stdout
    assert "nothing to remove" in out and (shm_dir / "closed1").exists()
    out = subprocess.run([sys.executable, "-m", "cbuf.cli", "gc", shm_dir, "--closed", "--older-than", "3600"],
                         capture_output=True, text=True).stdout
    assert "nothing to remove" in out and (shm_dir / "closed1").exists()  # closed just now
    out = subprocess.run([sys.executable, "-m", "cbuf.cli", "gc", shm_dir, "--closed"], capture_output=True,
                         text=True).stdout
    assert f"removed {shm_dir / 'closed1'} (closed producer" in out
    assert not (shm_dir / "closed1").exists() and not (shm_dir / "closed2").exists()
    assert (shm_dir / "live").exists()  # never a live one
    live.cmd("write 1")


def test_replay_replaces_by_default_and_no_replace_says_how(producer, shm_dir, tmp_path):
    p = producer(capacity=256, name="src")
    p.cmd("write 10")
    subprocess.run([sys.executable, "-m", "cbuf.cli", "record", p.path, "-o", tmp_path / "r.npy", "--rows", "10",
                    "--from-oldest"], check=True, capture_output=True)
    p.cmd("close")
    env = {**os.environ, "CBUF_DIR": str(shm_dir)}
    r = subprocess.run([sys.executable, "-m", "cbuf.cli", "replay", tmp_path / "r.npy", "--name", "src",
                        "--as-fast-as-possible", "--no-replace"], capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "drop --no-replace" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "cbuf.cli", "replay", tmp_path / "r.npy", "--name", "src",
                        "--as-fast-as-possible"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert cbuf.open(shm_dir / "src").epoch == 2
    # Onto a live buffer, the advice is to stop its producer - removing the file would not help (it said so).
    live = producer(capacity=256, name="live")
    for flags in (["--no-replace"], []):
        r = subprocess.run([sys.executable, "-m", "cbuf.cli", "replay", tmp_path / "r.npy", "--name", "live",
                            "--as-fast-as-possible", *flags], capture_output=True, text=True, env=env)
        assert r.returncode == 1 and "its producer is live: stop it first" in r.stderr, r.stderr
        assert "remove the file" not in r.stderr and "; Its" not in r.stderr, r.stderr
    live.cmd("write 1")


def test_a_recorder_waiting_for_its_buffer_gets_every_row_from_the_first(producer, tmp_path, shm_dir):
    """Recorders (and tail -f, bridge pub) started before the producer used to start at the newest row when
    the buffer appeared, missing its first rows without counting them lost. A reader that waited starts at
    the buffer's first row: received + lost = every row produced since it started waiting."""
    out = tmp_path / "early.npy"
    rec = subprocess.Popen([sys.executable, "-m", "cbuf.cli", "record", str(shm_dir / "late"), "-o", out,
                            "--until-closed"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # it is waiting now
        p = producer(capacity=1 << 16, name="late")
        p.cmd("write 3000")  # written at once, before the recorder can have attached
        p.cmd("close")
        _, err = rec.communicate(timeout=30)
    finally:
        rec.kill()
    assert rec.returncode == 0 and "recorded 3000 rows" in err and "lost 0 rows" in err, err
    assert list(np.load(out)["index"]) == list(range(3000))


def test_schema_mismatch_names_the_columns_that_differ(producer, tmp_path):
    """Two schemas with the same name and different layouts: the refusal says which columns differ."""
    from conftest import generated_module
    p = producer(capacity=64, name="checked")  # schema 'checked': index uint64, payload uint64[6], checksum
    schema = tmp_path / "checked.json"
    schema.write_text(json.dumps({"name": "checked", "capacity": 64, "columns": [
        {"name": "index", "type": "uint64"}, {"name": "payload", "type": "float64[6]"},
        {"name": "extra", "type": "uint32"}]}))
    mod = generated_module(schema, tmp_path / "gen")
    with pytest.raises(cbuf.SchemaMismatchError) as e:
        mod.open(p.path)
    msg = str(e.value)
    assert "'checked'" in msg and "column 'payload' float64[6] @8 -> uint64[6] @8" in msg
    assert "column 'checksum' (uint64 @56) added" in msg and "column 'extra' (uint32 @56) removed" in msg


def test_following_across_a_restart_while_other_threads_wait_and_read(producer, shm_dir):
    """The move to a new epoch never changes a consumer under a call in flight in another thread."""
    p = producer(capacity=4096, name="mt")
    p.cmd("write 4096")
    r = cbuf.open(shm_dir / "mt", follow=True, start=0)
    stop = threading.Event()
    errors = []

    def busy():
        try:
            while not stop.is_set():
                r.wait(0.02)
                r.last(4096)  # 256 KiB copies: the GIL is released, the old epoch's mapping must stay
        except Exception as e:  # noqa: BLE001 - any error fails the test below
            errors.append(e)

    threads = [threading.Thread(target=busy) for _ in range(2)]
    for t in threads:
        t.start()
    restarts = 0
    for epoch in range(2, 6):
        p.cmd("close")
        p = producer(capacity=4096, name="mt")
        p.cmd("write 100")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            res = r.read_new()
            if res.restart:
                assert res.restart.new_epoch == epoch
                restarts += 1
                break
            if not len(res.rows):
                r.wait(0.05)
    stop.set()
    for t in threads:
        t.join()
    assert not errors and restarts == 4
    r.close()


def test_the_stale_buffer_trap_live_waits_for_the_new_run(producer, tmp_path, shm_dir):
    """A recorder started before the producer, without following, attached to the previous run's closed buffer,
    recorded its 4001 old rows and exited before the new run began, with no hint. Now a following command says
    what it attached to (closed, since when), and --live (Reader(live=True)) waits for a live producer."""
    old = producer(capacity=8192, name="run")
    old.cmd("write 4001")
    old.cmd("close")
    out = tmp_path / "new.npy"
    hint = subprocess.run([sys.executable, "-m", "cbuf.cli", "stat", old.path, "--count", "1", "-i", "0.2"],
                          capture_output=True, text=True, timeout=30)
    assert hint.returncode == 0 and "is closed since" in hint.stderr and "4001 rows" in hint.stderr, hint.stderr
    assert "--live" in hint.stderr
    rec = subprocess.Popen([sys.executable, "-m", "cbuf.cli", "record", old.path, "-o", out, "--until-closed",
                            "--live"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        assert rec.poll() is None  # still waiting: the closed buffer is passed over
        new = producer(capacity=8192, name="run")
        new.cmd("write 10")
        new.cmd("close")
        _, err = rec.communicate(timeout=30)
    finally:
        rec.kill()
    assert rec.returncode == 0 and "waiting for a live producer" in err and "recorded 10 rows" in err, err
    assert len(np.load(out)) == 10
    with pytest.raises(cbuf.NotLiveError):
        cbuf.open(old.path, live=True, attach_timeout=0.2)
