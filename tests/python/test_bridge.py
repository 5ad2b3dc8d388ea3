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
    # --block: this test is about the bytes; on a starved machine a dropping publisher loses batches (the loss
    # tests below count those).
    pub, sub, ep = link(bridge_env, src, "t/daq", 1, pub_args=("--block",))
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
        line = sub.wait_for("(source epoch 2,")
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
    other = _core.Producer("src", 64, 4096, schema, 0x5eed, str(shm_dir), on_close=_core.OnClose.unlink)
    try:
        time.sleep(1.0)
        other.write_batch(np.zeros(64, np.uint8).tobytes())
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


def make_certs(folder: Path, *names: str) -> None:
    """A private CA (ca.pem) and, for each name, NAME.key + NAME.pem signed by it for localhost/127.0.0.1."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed: cannot make the test certificates")

    def ssl(*args):
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=cbuf-test-ca")
    (folder / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in names:
        ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj",
            "/CN=localhost")
        ssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
            f"{name}.pem", "-days", "2", "-extfile", "ext.cnf")


def test_tls_with_a_zenoh_configuration_file(producer, shm_dir, bridge_env, tmp_path):
    """docs/across-machines.md's TLS setup: the publisher listens on tls/ with a certificate signed by a private
    CA, the subscriber trusts that CA; a subscriber that does not trust it gets no schema (one line)."""
    make_certs(tmp_path, "server")
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


def forged(info, first, count=1, lost=0, seq=1, session=None, epoch=None, created=None, fp=None, row_size=None):
    """A well-formed batch message claiming the identity in `info` (a schema reply), or parts of another."""
    from cbuf.bridge import HEADER, MAGIC
    rs = info["row_size"] if row_size is None else row_size
    return HEADER.pack(MAGIC, rs, info["fingerprint"] if fp is None else fp,
                       info["epoch"] if epoch is None else epoch,
                       info["created_ns"] if created is None else created,
                       info["session"] if session is None else session, first, lost, count, 0, 0,
                       seq) + bytes(rs * count)


def test_messages_that_are_not_valid_batches_are_ignored(producer, bridge_env):
    """The network is hostile input too: a short message, a wrong magic, a count the length does not hold, an
    index past 2^63, lost > first, a message number of 0 or one used already, and a fingerprint or epoch the
    publisher does not serve are each ignored and counted; the rows around them arrive as usual."""
    import zenoh
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
            got = []
            while len(got) < 5:
                b = sub.next_batch(timeout=10)
                assert b is not None
                got += b.rows["index"].tolist()
            assert got == [0, 1, 2, 3, 4]
            info, seq = sub.info, sub._seq
            junk = [b"short", b"XXXX" + bytes(200),
                    forged(info, 5, count=1000)[:200],                       # count != length
                    forged(info, 1 << 63, seq=seq + 1),                      # index past 2^63
                    forged(info, 5, lost=9, seq=seq + 1),                    # lost > first
                    forged(info, 5, seq=0),                                  # message number 0
                    forged(info, 5, seq=seq),                                # a message number used already
                    forged(info, 5, seq=seq + 1, fp=info["fingerprint"] ^ 1),  # another schema, not served
                    forged(info, 5, seq=seq + 1, epoch=info["epoch"] + 7)]     # another epoch, not served
            for m in junk:
                forger.put("t/junk/rows", m)
            time.sleep(1.0)
            assert src.cmd("write 3") == "ok 8"
            got = []
            while len(got) < 3:
                b = sub.next_batch(timeout=10)
                assert b is not None and b.lost == 0 and b.restart is None
                got += b.rows["index"].tolist()
            assert got == [5, 6, 7]
            assert sub.ignored == len(junk) and sub.received == 8 and sub.lost == 0
        finally:
            forger.close()
    assert pub.stop() == 0


def relay_and_forger(bridge_env, src, key):
    """`bridge pub` and a `bridge sub` relaying "src" to "dst" (100 rows in), and a forging Zenoh peer linked to
    both, with the publisher's schema reply as anyone can ask for it: (pub, sub, forger, reply)."""
    import json
    import zenoh
    ep, ep2 = endpoints(), endpoints()
    pub, sub, _ = link(bridge_env, src, key, 100, ep=ep, pub_args=("--block",), sub_args=("--listen", ep2))
    forger = zenoh.open(cbuf.bridge.zenoh_config(connect=[ep, ep2]))
    (reply,) = [r for r in forger.get(f"{key}/schema", timeout=5) if r.ok is not None]
    return pub, sub, forger, json.loads(reply.ok.payload.to_bytes())


def test_a_forging_publisher_cannot_stop_restart_or_stall_the_relay(producer, shm_dir, bridge_env):
    """A second publisher on the key, with the schema and identity from the public KEY/schema reply: a batch
    10^12 ahead, 200 batches churning two source identities, forged and malformed schema replies. The relay
    follows the publisher it pinned: local readers get the real rows at their indices, no restart, nothing
    stalled; SIGTERM then stops the subscriber with status 0 and no traceback."""
    import json
    src = producer(capacity=1 << 14, name="src")
    pub, sub, forger, info = relay_and_forger(bridge_env, src, "t/forge")
    try:
        evil = dict(info, session=12345, epoch=info["epoch"] + 1, created_ns=1)
        other_schema = dict(evil, fingerprint=info["fingerprint"] ^ 1)
        answers = [json.dumps(x).encode() for x in (evil, other_schema)] + [
            b"not json", b"[" * 50000, json.dumps(dict(info, schema=5)).encode(),
            json.dumps(dict(info, row_size="64")).encode(), json.dumps(dict(info, capacity=-5)).encode()]

        def answer(query):
            for a in answers:
                query.reply("t/forge/schema", a)
        queryable = forger.declare_queryable("t/forge/schema", answer)
        with cbuf.Reader(str(shm_dir / "dst"), start="oldest", follow=True) as local:
            forger.put("t/forge/rows", forged(evil, 10**12, seq=1))                     # far ahead
            for k in range(200):                                                         # identity churn
                forger.put("t/forge/rows", forged(evil, 100 + k, seq=k + 1, session=7 + k % 2,
                                                  epoch=3 + k % 2, created=k % 2))
                forger.put("t/forge/rows", forged(other_schema, 100 + k, seq=k + 1))      # "schema changed"
            time.sleep(1.0)
            assert src.cmd("write 3000") == "ok 3100"
            got, restarts, deadline = [], 0, time.monotonic() + 20
            while len(got) < 3100 and time.monotonic() < deadline:
                b = local.read_new()
                restarts += b.restart is not None
                got += b.rows["index"].tolist()
                assert not b.lost
                if not len(b.rows):
                    local.wait(0.1)
            assert got == list(range(3100)) and restarts == 0 and local.epoch == 1
        queryable.undeclare()
    finally:
        forger.close()
    assert sub.stop() == 0
    line = sub.wait_for("stopped")
    assert "received 3100 rows, lost 0" in line and "of another publisher" in line, line
    assert not any("Traceback" in x or "error" in x for x in sub.lines), sub.lines
    assert pub.stop() == 0


def test_a_forged_jump_in_the_pinned_session_is_taken_back(producer, shm_dir, bridge_env):
    """A forger that copies the pinned publisher's session (it is in the public reply) and jumps the index
    10^12 ahead costs what it claims and one start-over: the publisher's next batch, behind the forged one,
    shows the jump was forged; the relay starts over at the real rows (local readers see a restart), every
    real row arrives at its index and the counts are exact again - never a stall (it once stalled for good:
    30 960 rows published, 3 161 received)."""
    src = producer(capacity=1 << 14, name="src")
    pub, sub, forger, info = relay_and_forger(bridge_env, src, "t/jump")
    try:
        with cbuf.Reader(str(shm_dir / "dst"), start="oldest", follow=True) as local:
            got = []
            while len(got) < 100:
                b = local.read_new()
                got += b.rows["index"].tolist()
                if not len(b.rows):
                    local.wait(0.1)
            forger.put("t/jump/rows", forged(info, 10**12, seq=10**9))
            time.sleep(0.5)
            assert src.cmd("write 3000") == "ok 3100"
            deadline = time.monotonic() + 20
            forged_rows, restarts = 0, 0
            while time.monotonic() < deadline and (not got or got[-1] != 3099):
                b = local.read_new()
                restarts += b.restart is not None
                real = b.rows["index"].tolist() if b.first < 10**12 else []
                forged_rows += len(b.rows) - len(real)
                got += real
                if not len(b.rows) and not b.restart:
                    local.wait(0.1)
            assert got == list(range(3100)) and restarts == 1 and forged_rows <= 1
    finally:
        forger.close()
    assert sub.stop() == 0
    line = sub.wait_for("stopped")
    assert "received 3100 rows, lost 0" in line and "started over 1 times" in line, line
    assert pub.stop() == 0


def test_schema_replies_are_checked_field_by_field():
    """Every malformed reply is one ValueError naming the field - never a KeyError, a RecursionError or a
    capacity the runtime cannot take."""
    import json
    from cbuf.bridge import parse_reply
    good = {"format": list(cbuf._core.FORMAT_VERSION), "fingerprint": 1, "row_size": 8, "capacity": 64,
            "epoch": 1, "created_ns": 5, "base_index": 0, "session": 9, "name": "t",
            "schema": json.dumps({"name": "t", "row_size": 8, "columns": [{"name": "a", "type": "uint64",
                                                                            "offset": 0}]})}
    assert parse_reply(json.dumps(good).encode())["capacity"] == 64
    variants = [b"", b"null", b"[]", b"5", b"[" * 100000, json.dumps({}).encode()]
    for k in good:
        variants.append(json.dumps({x: v for x, v in good.items() if x != k}).encode())
        for bad in (None, "abc", -5, 1.5, [], {}, True, 2**64, 2**70):
            variants.append(json.dumps({**good, k: bad}).encode())
    refused = 0
    for v in variants:
        try:
            parse_reply(v)
        except ValueError as e:
            assert str(e) and "\n" not in str(e)
            refused += 1
    ok = [v for v in variants if v.count(b'"name": ') and json.loads(v).get("name") not in (None,)]
    assert refused >= len(variants) - len(ok) - 2  # only 'name', which is informative, may be anything


def test_a_subscriber_that_gets_only_malformed_replies_exits_with_one_line(bridge_env):
    """It never hangs: the session is closed whatever the reply was, and the line says why replies were not
    taken. A capacity above MAX_REMOTE_CAPACITY is refused unless --capacity says how many rows to keep."""
    import json
    import zenoh
    ep = endpoints()
    fake = zenoh.open(cbuf.bridge.zenoh_config(listen=[ep]))
    answers = [b"not json", json.dumps({"format": [1, 1], "schema": 5}).encode()]
    q = fake.declare_queryable("t/bad/schema", lambda query: [query.reply("t/bad/schema", a) for a in answers])
    try:
        p = bridge_env("sub", "t/bad", "--name", "dst", "--connect", ep, "--schema-timeout", "2")
        assert p.p.wait(timeout=30) == 1
        p._t.join(timeout=5)
        assert len(p.lines) == 1 and "replies were not valid" in p.lines[0], p.lines
        schema = json.dumps({"name": "t", "row_size": 8, "columns": [{"name": "a", "type": "uint64", "offset": 0}]})
        answers[:] = [json.dumps({"format": list(cbuf._core.FORMAT_VERSION), "schema": schema, "fingerprint": 1,
                                  "row_size": 8, "capacity": 1 << 30, "epoch": 1, "created_ns": 1,
                                  "base_index": 0, "session": 3}).encode()]
        p = bridge_env("sub", "t/bad", "--name", "dst", "--connect", ep, "--schema-timeout", "5")
        assert p.p.wait(timeout=30) == 1
        p._t.join(timeout=5)
        assert len(p.lines) == 1 and "--capacity" in p.lines[0] and str(1 << 30) in p.lines[0], p.lines
        p = bridge_env("sub", "t/bad", "--name", "dst", "--connect", ep, "--capacity", "64")
        p.wait_for("subscribed to t/bad/rows")
        assert p.stop() == 0
    finally:
        q.undeclare()
        fake.close()


def wait_until_sigterm_is_caught(p, timeout=30.0):
    """Until the process has a handler for SIGTERM (bit 15 of SigCgt in /proc/PID/status): how long the
    interpreter takes to start before that depends on the machine's load, not on cbuf."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and p.poll() is None:
        with open(f"/proc/{p.pid}/status") as f:
            caught = next(int(x.split()[1], 16) for x in f if x.startswith("SigCgt:"))
        if caught & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.002)
    raise AssertionError("the command never took SIGTERM over")


@pytest.mark.parametrize("when", ["at start", "in the schema query", "while streaming"])
def test_sigterm_stops_bridge_sub_promptly_every_time(producer, shm_dir, bridge_env, when):
    """Issue 33: SIGTERM at random moments - right after start, during the schema query (no publisher yet),
    mid-stream, during shutdown (a second one) - ends `bridge sub` within 2 s, status 0, no traceback, no
    local buffer left; 50 times over the three cases."""
    import random
    rng = random.Random(33)
    src = producer(capacity=1 << 14, name="src")
    ep = endpoints()
    pub = None
    if when != "in the schema query":
        pub = bridge_env("pub", "src", "--key", "t/term", "--listen", ep)
        pub.wait_for("-> t/term/rows")
        src.send("pace 1000000 20")  # rows keep coming for longer than the test
    for k in range(17 if when != "in the schema query" else 16):
        sub = bridge_env("sub", "t/term", "--name", f"dst{k}", "--connect", ep, "--schema-timeout", "30")
        if when == "at start":  # from the moment stopping.py has taken SIGTERM over (before it, the interpreter
            wait_until_sigterm_is_caught(sub.p)  # is still starting and the OS default applies)
            time.sleep(rng.uniform(0, 0.8))
        elif when == "while streaming":
            sub.wait_for("from row")
            time.sleep(rng.uniform(0, 0.3))
        else:  # no publisher: the subscriber keeps asking KEY/schema
            time.sleep(rng.uniform(0.2, 1.5))
        t0 = time.monotonic()
        sub.p.send_signal(signal.SIGINT if k % 3 == 2 else signal.SIGTERM)  # Ctrl-C too, now and then
        if k % 2:
            time.sleep(rng.uniform(0, 0.05))
            if sub.p.poll() is None:
                sub.p.send_signal(signal.SIGTERM)  # a second one, during the shutdown of the first
        rc = sub.p.wait(timeout=10)
        took = time.monotonic() - t0
        sub._t.join(timeout=5)
        assert rc == 0 and took < 2.0, (k, rc, took, sub.lines)
        assert not any("Traceback" in x or "Exception" in x for x in sub.lines), sub.lines
        assert not (shm_dir / f"dst{k}").exists()
    if pub is not None:
        assert pub.stop() == 0


def test_with_mutual_tls_a_peer_without_a_certificate_cannot_publish_into_the_relay(producer, shm_dir, bridge_env,
                                                                                    tmp_path):
    """docs/across-machines.md's configuration for networks where forging must be impossible: the relay
    (`bridge sub`) listens with mutual TLS and the publisher connects with a certificate of the same private
    CA. A peer without a certificate gets no link: its forged batches never reach the relay. The control, a
    peer with a certificate, reaches it (its batches are counted as another publisher's)."""
    import zenoh
    make_certs(tmp_path, "server", "client")
    tls = '{ transport: { link: { tls: { root_ca_certificate: "%s", %s } } } }'
    (tmp_path / "listen.json5").write_text(tls % (tmp_path / "ca.pem", 'listen_private_key: "%s", listen_certificate: '
                                                  '"%s", enable_mtls: true' % (tmp_path / "server.key",
                                                                               tmp_path / "server.pem")))
    (tmp_path / "connect.json5").write_text(tls % (tmp_path / "ca.pem", 'connect_private_key: "%s", '
                                                   'connect_certificate: "%s", enable_mtls: true'
                                                   % (tmp_path / "client.key", tmp_path / "client.pem")))
    (tmp_path / "nocert.json5").write_text(tls % (tmp_path / "ca.pem", "enable_mtls: true"))
    src = producer(capacity=4096, name="src")
    ep = f"tls/localhost:{free_port()}"
    sub = bridge_env("sub", "t/mtls", "--name", "dst", "--listen", ep, "--config", tmp_path / "listen.json5")
    pub = bridge_env("pub", "src", "--key", "t/mtls", "--connect", ep, "--config", tmp_path / "connect.json5",
                     "--start", "oldest", "--block")
    pub.wait_for("-> t/mtls/rows")
    sub.wait_for("subscribed to t/mtls/rows")
    time.sleep(0.5)
    assert src.cmd("write 100") == "ok 100"
    sub.wait_for("from row 0")
    info = {"row_size": 64, "fingerprint": 0, "epoch": 1, "created_ns": 0, "session": 1}

    def forge(config: str) -> None:
        try:
            forger = zenoh.open(cbuf.bridge.zenoh_config(connect=[ep], config_file=str(tmp_path / config)))
        except Exception:  # Zenoh may refuse to open a session whose only link is refused: that is the point
            return
        try:
            time.sleep(1.0)
            for k in range(20):
                forger.put("t/mtls/rows", forged(info, 10**12 + k, seq=k + 1))
            time.sleep(0.5)
        finally:
            forger.close()
    forge("nocert.json5")
    assert src.cmd("write 100") == "ok 200"
    indices, rows, lost = read_all(shm_dir / "dst", until=200)
    assert indices == list(range(200)) and not lost and checksums_ok(rows).all()
    forge("connect.json5")  # the control: a certified peer reaches the relay
    assert sub.stop() == 0
    line = sub.wait_for("stopped")
    assert "received 200 rows, lost 0" in line and "20 of another publisher" in line, line
    assert pub.stop() == 0


def test_the_end_of_the_source_crosses_the_bridge(producer, shm_dir, bridge_env, tmp_path):
    """Issue 29: a bridged buffer never closed - `cbuf ls` said live, `Reader.finished` stayed false, `record
    --until-closed` and `for b in sub` ran until killed. Now the source's close (or death) crosses: the local
    buffer is closed the same way, the remote recorder ends with every row, and iterating a subscription ends.
    A restarted source then gets a new local buffer, as before."""
    src = producer(capacity=4096, name="src")
    pub, sub, ep = link(bridge_env, src, "t/end", 10, pub_args=("--block",))
    env = dict(os.environ, CBUF_DIR=str(shm_dir))
    out = tmp_path / "remote.npy"
    rec = subprocess.Popen([sys.executable, "-m", "cbuf.cli", "record", "dst", "-o", out, "--until-closed",
                            "--from-oldest"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    batches = []
    with cbuf.bridge.subscribe("t/end", connect=[ep]) as direct:
        t = threading.Thread(target=lambda: batches.extend(direct))  # ends when the source ends
        t.start()
        time.sleep(1.0)
        assert src.cmd("write 90") == "ok 100"
        assert src.cmd("close") == "ok closed"
        t.join(timeout=20)
        assert not t.is_alive(), "iterating the subscription did not end"
    assert batches[-1].ended == "closed" and batches[-1].first == 100 and not len(batches[-1].rows)
    assert sum(len(b.rows) for b in batches) + sum(b.lost for b in batches) == 100 - batches[0].first
    sub.wait_for("the source closed at row 100")
    _, err = rec.communicate(timeout=30)
    assert rec.returncode == 0 and "recorded 100 rows" in err and "lost 0" in err, err
    with cbuf.open(shm_dir / "dst") as r:
        assert len(r.read_new().rows) == 100 and r.state == "closed" and r.finished
    ls = subprocess.run([sys.executable, "-m", "cbuf.cli", "ls", "--json"], capture_output=True, text=True, env=env)
    import json
    assert {e["name"]: e["state"] for e in json.loads(ls.stdout)}["dst"] == "closed"
    # The source comes back, writes, and dies without closing: a new local buffer, then "dead" crosses too.
    src2 = producer(capacity=4096, name="src")
    time.sleep(1.0)
    assert src2.cmd("write 5") == "ok 5"
    sub.wait_for("(source epoch 2,")
    src2.send("exit")
    sub.wait_for("the source dead at row 5", timeout=30)
    with cbuf.open(shm_dir / "dst") as r:
        assert r.epoch == 2 and r.state == "closed" and r.head == 5
    assert sub.stop() == 0 and pub.stop() == 0


def test_a_subscriber_waiting_before_the_source_existed_counts_its_first_rows(producer, shm_dir, bridge_env):
    """Issue 29: a `bridge sub` started before the producer received from row 1000 on, and nothing counted rows
    0-999. received + lost = every row produced since the subscriber began waiting: here the publisher starts
    late (at the end), so rows 0-999 are reported lost - at their indices, to local readers too."""
    ep = endpoints()
    sub = bridge_env("sub", "t/early", "--name", "dst", "--listen", ep, "--schema-timeout", "30")
    time.sleep(1.0)  # the subscriber waits for a publisher
    src = producer(capacity=4096, name="src")
    assert src.cmd("write 1000") == "ok 1000"
    pub = bridge_env("pub", "src", "--key", "t/early", "--connect", ep, "--block")  # starts at the end
    pub.wait_for("-> t/early/rows")
    sub.wait_for("subscribed to t/early/rows")
    time.sleep(0.5)
    assert src.cmd("write 10") == "ok 1010"
    sub.wait_for("from row 1000")
    indices, rows, lost = read_all(shm_dir / "dst", until=1010)
    assert indices == list(range(1000, 1010)) and lost == [range(0, 1000)]
    assert sub.stop() == 0
    assert "received 10 rows, lost 1000" in sub.wait_for("stopped")
    assert pub.stop() == 0


def test_a_restarted_subscriber_reports_the_rows_it_missed_as_lost(producer, shm_dir, bridge_env):
    """Issue 29: after kill -9 of `bridge sub` and a restart, rows 7055-8467 were counted nowhere (only deducible
    from Restart(old_end=7055, new_start=8468)). The new relay continues the buffer the killed one left (same
    source, found in its schema's cbuf_source): a following local reader sees the restart and then the missed
    rows as lost, so received + lost = produced."""
    src = producer(capacity=4096, name="src")
    pub, sub, ep = link(bridge_env, src, "t/again", 100, pub_args=("--block",))
    with cbuf.Reader(str(shm_dir / "dst"), start="oldest", follow=True) as local:
        got, lost, restarts = [], [], []

        def drain(until, timeout=20):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and (not got or got[-1] < until - 1):
                b = local.read_new()
                got.extend(b.rows["index"].tolist())
                if b.lost:
                    lost.append(b.lost_range)
                if b.restart:
                    restarts.append(b.restart)
                if not len(b.rows) and not b.lost and not b.restart:
                    local.wait(0.1)
        drain(100)
        sub.stop(signal.SIGKILL)
        assert src.cmd("write 500") == "ok 600"  # published, received by nobody
        sub2 = bridge_env("sub", "t/again", "--name", "dst", "--connect", ep)
        sub2.wait_for("subscribed to t/again/rows")
        time.sleep(0.5)
        assert src.cmd("write 10") == "ok 610"
        drain(610)
        assert got == list(range(100)) + list(range(600, 610)), got[95:]
        assert lost == [range(100, 600)] and len(restarts) == 1
        assert restarts[0].old_end == 100 and restarts[0].new_start == 100
    assert sub2.stop() == 0 and pub.stop() == 0


def test_bridge_ls_lists_the_published_keys(producer, bridge_env):
    """Issue 29: a way to see which keys are published on the network (Zenoh liveliness tokens), like
    `ros2 topic list`; a stopped publisher is no longer listed."""
    producer(capacity=64, name="src")
    eps = [endpoints(), endpoints()]  # peers do not relay for each other: ls connects to both
    pubs = [bridge_env("pub", "src", "--key", key, "--listen", ep) for key, ep in zip(("lab/a", "lab/b"), eps)]
    for p, key in zip(pubs, ("lab/a", "lab/b")):
        p.wait_for(f"-> {key}/rows")
    env = dict(os.environ)
    ls = [sys.executable, "-m", "cbuf.cli", "bridge", "ls", "--connect", eps[0], "--connect", eps[1]]
    r = subprocess.run(ls, capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert [x.split()[0] for x in lines] == ["lab/a", "lab/b"], r.stdout
    assert "schema 'checked', 64-byte rows, capacity 64, source epoch 1" in lines[0], r.stdout
    assert pubs[1].stop() == 0
    time.sleep(0.5)
    r = subprocess.run(ls, capture_output=True, text=True, timeout=60, env=env)
    assert [x.split()[0] for x in r.stdout.strip().splitlines()] == ["lab/a"], r.stdout
    assert pubs[0].stop() == 0
