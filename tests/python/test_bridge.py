"""cbuf bridge over Zenoh, on the loopback only: tcp/127.0.0.1, multicast scouting off, Zenoh's shared-memory
transport off (so the network path is what is tested). A C++ producer -> `cbuf bridge pub` -> `cbuf bridge sub`
-> local C++ and Python readers, and cbuf.bridge.subscribe() straight from the network. Every process is
stopped at the end of its test, and nothing is left in /dev/shm."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

cbuf = pytest.importorskip("cbuf")
pytest.importorskip("cbuf._core")
pytest.importorskip("zenoh")
import cbuf.bridge  # noqa: E402

from test_reader import checksums_ok  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A `cbuf bridge` process; its stderr is collected by a thread so that it never blocks on a full pipe."""

    def __init__(self, *args, env=None):
        self.p = subprocess.Popen([sys.executable, "-m", "cbuf.cli", "bridge", *map(str, args)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self._t = threading.Thread(target=self._collect, daemon=True)
        self._t.start()

    def _collect(self):
        for line in self.p.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.p.poll() is not None and not self._t.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"no {text!r} from cbuf bridge; it said: {self.lines}")

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = self.p.wait()
        self._t.join(timeout=5)
        return rc


@pytest.fixture
def bridge_env(shm_dir):
    """Environment of the bridge processes (CBUF_DIR: the test's directory), and a check that they leave
    nothing behind anywhere in /dev/shm."""
    before = set(os.listdir("/dev/shm"))
    env = dict(os.environ, CBUF_DIR=str(shm_dir))
    procs = []

    def start(*args):
        p = Proc(*args, env=env)
        procs.append(p)
        return p
    yield start
    for p in procs:
        p.stop(signal.SIGKILL)
    # Files other tests running in parallel create are named cbuf*; anything else that appeared (a Zenoh
    # shared-memory segment, say) would be the bridge's, and is removed before failing.
    left = {n for n in set(os.listdir("/dev/shm")) - before if not n.startswith("cbuf")}
    for n in left:
        path = os.path.join("/dev/shm", n)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    assert not left, f"left in /dev/shm: {left}"


def endpoints():
    port = free_port()
    return f"tcp/127.0.0.1:{port}"


def link(bridge_env, src, key, rows, ep=None, pub_args=(), sub_args=()):
    """`bridge pub` of the buffer "src" (from its oldest row) and `bridge sub` into "dst", over `ep`; the source
    then writes its first `rows` rows, and returns once the subscriber received the first batch."""
    ep = ep or endpoints()
    pub = bridge_env("pub", "src", "--key", key, "--listen", ep, "--start", "oldest", *pub_args)
    pub.wait_for(f"-> {key}/rows")
    sub = bridge_env("sub", key, "--name", "dst", "--connect", ep, *sub_args)
    sub.wait_for(f"subscribed to {key}/rows")
    time.sleep(0.5)  # the subscription reaches the publisher
    assert src.cmd(f"write {rows}") == f"ok {rows}"
    sub.wait_for("from row 0")
    return pub, sub, ep


def read_all(path, timeout=20.0, until=None):
    """Every row of a buffer as a local reader sees it: (indices, rows, lost ranges), checked as it goes."""
    got, rows, lost = [], [], []
    deadline = time.monotonic() + timeout
    with cbuf.Reader(str(path), start="oldest") as r:
        while time.monotonic() < deadline:
            b = r.read_new()
            if b.lost:
                lost.append(b.lost_range)
            if len(b.rows):
                got.extend(range(b.first, b.first + len(b.rows)))
                rows.append(b.rows.copy())
            elif until is not None and r.cursor >= until:
                break
            else:
                r.wait(0.05)
    return got, (np.concatenate(rows) if rows else np.zeros(0, dtype=r.dtype)), lost


def test_rows_cross_with_their_indices_byte_for_byte(producer, shm_dir, bridge_env, test_bin):
    src = producer(capacity=1 << 16, name="src")
    pub, sub, ep = link(bridge_env, src, "t/daq", 1)
    assert src.cmd("write 30000") == "ok 30001"
    indices, rows, lost = read_all(shm_dir / "dst", until=30001)
    assert indices == list(range(30001)) and not lost
    with cbuf.Reader(src.path, start="oldest") as r:
        source = r.read_new(1 << 16)
    assert source.first == 0 and rows.tobytes() == source.rows.tobytes()  # byte for byte, same indices
    assert checksums_ok(rows).all()
    # `cbuf ls` shows the two buffers, and nothing else: not a stray file such as a Zenoh shared-memory segment
    # (the bridge turns that transport off, and the fixture checks that nothing appeared in /dev/shm).
    (shm_dir / "zenoh_shm_stray").write_bytes(os.urandom(8192))
    ls = subprocess.run([sys.executable, "-m", "cbuf.cli", "ls"], capture_output=True, text=True, timeout=30,
                        env=dict(os.environ, CBUF_DIR=str(shm_dir)))
    assert ls.returncode == 0 and "src" in ls.stdout and "dst" in ls.stdout and "zenoh" not in ls.stdout + ls.stderr
    (shm_dir / "zenoh_shm_stray").unlink()
    # A C++ reader of the local buffer: every row from index 0 received, checksummed, in order.
    out = subprocess.run([str(test_bin / "cbuf_torture_proc"), "consumer", str(shm_dir / "dst"), "30001", "0"],
                         capture_output=True, text=True, timeout=60)
    assert "received=30001 lost=0 errors=0" in out.stdout, out.stdout + out.stderr
    # docs/across-machines.md's example, as a script: the next 100 rows, from the network.
    example = subprocess.Popen([sys.executable, str(Path(__file__).resolve().parents[2] / "docs" / "examples" /
                                                    "bridge_subscribe.py"), "t/daq", ep, "100"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert example.stdout.readline().strip() == "subscribed"
        time.sleep(0.5)
        assert src.cmd("write 100") == "ok 30101"
        out, err = example.communicate(timeout=30)
    finally:
        if example.poll() is None:
            example.kill()
            example.wait()
    assert example.returncode == 0, err
    lines = [line.split() for line in out.splitlines()]
    assert lines[0][0] == lines[0][2] == "30001" and sum(int(x[1]) for x in lines) == 100 and "lost" not in out
    # Python analysis straight from the network, no local buffer: it joins late, so it starts at the next batch.
    with cbuf.bridge.subscribe("t/daq", connect=[ep]) as net:
        time.sleep(0.5)
        assert src.cmd("write 100") == "ok 30201"
        b = net.next_batch(timeout=10)
        assert b is not None and b.first == 30101 and b.lost == 0 and b.epoch == 1
        assert b.rows.dtype.names == ("index", "payload", "checksum") and checksums_ok(b.rows).all()
        assert list(b.rows["index"]) == list(range(b.first, b.first + len(b.rows)))
    assert sub.stop() == 0 and "received 30201 rows, lost 0" in sub.wait_for("stopped")
    assert pub.stop() == 0 and "published 30201 rows" in pub.wait_for("stopped")
    assert not (shm_dir / "dst").exists()  # the local buffer goes with the subscriber


def account(path, stop: threading.Event, result: dict):
    """A local reader that follows the relayed buffer while it is fed: received, lost, and errors."""
    received = lost = errors = 0
    expected = None
    with cbuf.Reader(str(path), start="oldest", attach_timeout=20) as r:
        while True:
            b = r.read_new()
            if expected is None:
                expected = b.first - b.lost
                result["start"] = expected
            if b.lost and b.lost_range.start != expected:
                errors += 1
            lost += b.lost
            if len(b.rows):
                errors += int(b.first != expected + b.lost) + int((~checksums_ok(b.rows)).sum())
                errors += int((b.rows["index"] != np.arange(b.first, b.first + len(b.rows))).sum())
            received += len(b.rows)
            expected = b.first + len(b.rows) if len(b.rows) else expected + b.lost
            if not len(b.rows) and not b.lost:
                if stop.is_set():
                    break
                r.wait(0.02)
    result.update(received=received, lost=lost, errors=errors, end=expected)


def test_forced_loss_is_reported_exactly_end_to_end(producer, shm_dir, bridge_env):
    """A subscriber stopped while a burst is published (the network drops batches), then the publishing bridge
    killed with kill -9 and restarted while the producer writes: the remote reader gets every row or is told it
    was lost, with its exact range; received + lost = produced."""
    src = producer(capacity=1 << 14, name="src")
    pub, sub, ep = link(bridge_env, src, "t/loss", 1)
    stop, result = threading.Event(), {}
    t = threading.Thread(target=account, args=(shm_dir / "dst", stop, result))
    t.start()
    # 1. The subscriber stops reading: Zenoh's queues fill and the publisher drops (never waits).
    os.kill(sub.p.pid, signal.SIGSTOP)
    for _ in range(20):
        src.cmd("write 20000")
    time.sleep(1.0)
    os.kill(sub.p.pid, signal.SIGCONT)
    # 2. The publishing bridge dies and comes back; rows written meanwhile never leave the source host.
    pub.stop(signal.SIGKILL)
    src.cmd("pace 2000 50")
    pub2 = bridge_env("pub", "src", "--key", "t/loss", "--listen", ep)
    pub2.wait_for("-> t/loss/rows")
    time.sleep(1.0)  # the subscriber reconnects
    produced = int(src.cmd("pace 3000 50").split()[1])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with cbuf.Reader(str(shm_dir / "dst")) as r:
            if r.head >= produced:
                break
        time.sleep(0.1)
    stop.set()
    t.join(timeout=30)
    assert result["errors"] == 0
    assert result["start"] == 0 and result["end"] == produced
    assert result["received"] + result["lost"] == produced
    assert result["lost"] > 0 and result["received"] > 0
    assert sub.stop() == 0
    # The subscriber's own count (which the local reader may not match: it can be lapped by the relay, and is
    # then told so too) covers the same rows exactly.
    import re
    line = sub.wait_for("stopped")
    received, lost, at_source, on_the_way = map(int, re.search(
        r"received (\d+) rows, lost (\d+) \((\d+) at the source, (\d+) on the way\)", line).groups())
    assert received + lost == produced and at_source + on_the_way == lost and on_the_way > 0, line
    assert pub2.stop() == 0


def test_a_producer_restart_is_an_epoch_change_on_the_remote_host(producer, shm_dir, bridge_env, test_bin):
    src = producer(capacity=4096, name="src")
    pub, sub, ep = link(bridge_env, src, "t/epoch", 10)
    with cbuf.Reader(str(shm_dir / "dst"), start="oldest", follow=True) as remote:
        first = remote.read_new()
        while len(first.rows) < 10:
            remote.wait(1)
            more = remote.read_new()
            first = first._replace(rows=np.concatenate([first.rows, more.rows]))
        old_epoch = remote.epoch
        # The source producer closes and a new one takes the name: a new epoch on the source host...
        assert src.cmd("close") == "ok closed"
        src2 = producer(capacity=4096, name="src")
        time.sleep(1.0)
        assert src2.cmd("write 5") == "ok 5"
        line = sub.wait_for("(epoch 2,")
        assert "from row 0" in line
        # ...and on the remote host: the local buffer is replaced, and a following reader is told.
        deadline = time.monotonic() + 20
        restart = None
        rows = []
        while time.monotonic() < deadline and len(rows) < 5:
            b = remote.read_new()
            restart = restart or b.restart
            rows.extend(b.rows["index"].tolist())
            if not len(b.rows) and not b.restart:
                remote.wait(0.1)
        assert restart is not None and restart.new_epoch != old_epoch
        assert rows == [0, 1, 2, 3, 4]
    assert sub.stop() == 0 and pub.stop() == 0


def test_bad_use_is_one_line(shm_dir, bridge_env):
    ep = endpoints()
    p = bridge_env("sub", "t/none", "--name", "dst", "--connect", ep, "--schema-timeout", "1")
    assert p.p.wait(timeout=30) == 1
    p._t.join(timeout=5)
    assert len(p.lines) == 1 and "no cbuf bridge publisher answered on t/none/schema within 1 s" in p.lines[0]
    q = bridge_env("pub", "missing", "--key", "t/x", "--listen", ep, "--wait", "0")
    assert q.p.wait(timeout=30) == 1
    q._t.join(timeout=5)
    assert len(q.lines) == 1 and "no buffer 'missing'" in q.lines[0]
    r = bridge_env("sub", "t/*", "--name", "dst", "--connect", ep)
    assert r.p.wait(timeout=30) == 1
    r._t.join(timeout=5)
    assert "bad key 't/*'" in r.lines[0]
    assert not list(Path(shm_dir).iterdir())


def test_a_schema_change_at_the_source_is_refused_with_the_columns_that_differ(producer, shm_dir, bridge_env):
    src = producer(capacity=4096, name="src")
    pub, sub, ep = link(bridge_env, src, "t/schema", 3)
    # The source's producer is replaced by one of another schema: "payload" became float64[6].
    assert src.cmd("close") == "ok closed"
    from cbuf import _core
    schema = ('{"name":"checked","columns":[{"name":"index","type":"uint64","offset":0},'
              '{"name":"payload","type":"float64[6]","offset":8},{"name":"checksum","type":"uint64","offset":56}]}')
    other = _core.Producer("src", 64, 4096, schema, 0x5eed, str(shm_dir), keep=False)
    try:
        time.sleep(1.0)
        other.write(np.zeros(64, np.uint8).tobytes())
        assert sub.p.wait(timeout=30) == 1
        sub._t.join(timeout=5)
        # subscribed, receiving, the summary, and the one error line
        assert len(sub.lines) == 4 and "stopped; received 3 rows" in sub.lines[2], sub.lines
        assert sub.lines[-1].startswith("cbuf bridge: error: t/schema: the source's schema changed")
        assert "payload" in sub.lines[-1] and "float64[6]" in sub.lines[-1], sub.lines[-1]
        assert not (shm_dir / "dst").exists()
    finally:
        other.close()
    assert pub.stop() == 0


def test_without_zenoh_the_bridge_is_one_line_naming_the_extra(shm_dir, tmp_path):
    blocker = tmp_path / "blocker"
    (blocker / "zenoh").mkdir(parents=True)
    (blocker / "zenoh" / "__init__.py").write_text("raise ImportError('zenoh is not installed')\n")
    env = {**os.environ, "CBUF_DIR": str(shm_dir),
           "PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])}
    for args in (("sub", "t/x", "--name", "dst"), ("pub", "src", "--key", "t/x")):
        r = subprocess.run([sys.executable, "-m", "cbuf.cli", "bridge", *args], capture_output=True, text=True,
                           env=env, timeout=60)
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "pip install 'cbuf[zenoh]'" in r.stderr and "eclipse-zenoh" in r.stderr
    assert not list(shm_dir.iterdir())


def test_tls_with_a_zenoh_configuration_file(producer, shm_dir, bridge_env, tmp_path):
    """docs/across-machines.md's TLS setup: the publisher listens on tls/ with a certificate signed by a private
    CA, the subscriber trusts that CA; a subscriber that does not trust it gets no schema (one line)."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed: cannot make the test certificates")
    def ssl(*args):
        subprocess.run(["openssl", *args], cwd=tmp_path, check=True, capture_output=True, timeout=60)
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=cbuf-test-ca")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (tmp_path / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
        "server.pem", "-days", "2", "-extfile", "ext.cnf")
    (tmp_path / "listen.json5").write_text(
        '{ transport: { link: { tls: { listen_private_key: "%s", listen_certificate: "%s" } } } }'
        % (tmp_path / "server.key", tmp_path / "server.pem"))
    (tmp_path / "connect.json5").write_text(
        '{ transport: { link: { tls: { root_ca_certificate: "%s" } } } }' % (tmp_path / "ca.pem"))
    src = producer(capacity=4096, name="src")
    pub, sub, ep = link(bridge_env, src, "t/tls", 100, ep=f"tls/localhost:{free_port()}",
                         pub_args=("--config", tmp_path / "listen.json5"),
                         sub_args=("--config", tmp_path / "connect.json5"))
    indices, rows, lost = read_all(shm_dir / "dst", until=100)
    assert indices == list(range(100)) and not lost and checksums_ok(rows).all()
    untrusting = bridge_env("sub", "t/tls", "--name", "dst2", "--connect", ep, "--schema-timeout", "2")
    assert untrusting.p.wait(timeout=60) == 1
    untrusting._t.join(timeout=5)
    assert "no cbuf bridge publisher answered" in untrusting.lines[-1], untrusting.lines
    bad = bridge_env("sub", "t/tls", "--name", "dst3", "--config", tmp_path / "missing.json5")
    assert bad.p.wait(timeout=60) == 1
    bad._t.join(timeout=5)
    assert len(bad.lines) == 1 and "missing.json5: not a usable Zenoh configuration" in bad.lines[0], bad.lines
    assert sub.stop() == 0 and pub.stop() == 0


def test_messages_that_are_not_valid_batches_are_ignored(producer, bridge_env):
    """The network is hostile input too: a short message, a wrong magic, a count the length does not hold, an
    index past 2^63 and a fingerprint the publisher does not serve are each ignored and counted; the rows
    around them arrive as usual."""
    import zenoh
    from cbuf.bridge import HEADER, MAGIC
    src = producer(capacity=4096, name="src")
    ep = endpoints()
    pub = bridge_env("pub", "src", "--key", "t/junk", "--listen", ep, "--start", "oldest")
    pub.wait_for("-> t/junk/rows")
    ep2 = endpoints()  # the forger connects to the subscriber itself (peers do not relay for each other)
    with cbuf.bridge.subscribe("t/junk", connect=[ep], listen=[ep2]) as sub:
        forger = zenoh.open(cbuf.bridge.zenoh_config(connect=[ep2]))
        try:
            time.sleep(0.5)
            assert src.cmd("write 5") == "ok 5"
            first = sub.next_batch(timeout=10)
            assert first is not None and list(first.rows["index"]) == [0, 1, 2, 3, 4]
            fp, epoch = sub.fingerprint, first.epoch
            junk = [b"short", b"XXXX" + bytes(200),
                    HEADER.pack(MAGIC, 64, fp, epoch, 0, 1, 5, 0, 1000, 0, 0) + bytes(64),     # count != length
                    HEADER.pack(MAGIC, 64, fp, epoch, 0, 1, 1 << 63, 0, 1, 0, 0) + bytes(64),  # index past 2^63
                    HEADER.pack(MAGIC, 64, fp ^ 1, epoch, 0, 1, 5, 0, 1, 0, 0) + bytes(64),    # another schema
                    HEADER.pack(MAGIC, 64, fp, epoch, 0, 1, 5, 9, 1, 0, 0) + bytes(64)]        # lost > first
            for m in junk:
                forger.put("t/junk/rows", m)
            time.sleep(0.5)
            assert src.cmd("write 3") == "ok 8"
            b = sub.next_batch(timeout=10)
            assert b is not None and list(b.rows["index"]) == [5, 6, 7] and b.lost == 0
            assert sub.ignored == len(junk) and sub.received == 8 and sub.lost == 0
        finally:
            forger.close()
    assert pub.stop() == 0
