"""The Python reader over cbuf._core, driven by a real C++ producer process (tests/helpers/pyprod.cpp)."""
import os
import signal
import threading
import time

import numpy as np
import pytest

cbuf = pytest.importorskip("cbuf")
pytest.importorskip("cbuf._core")


def mix(x):
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9e3779b97f4a7c15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xbf58476d1ce4e5b9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94d049bb133111eb)
        return x ^ (x >> np.uint64(31))


def checksums_ok(rows) -> np.ndarray:
    """tests/cpp/common.hpp CheckedRow::ok(), vectorised."""
    s = mix(rows["index"].astype(np.uint64))
    for k in range(6):
        s = mix(s ^ rows["payload"][:, k])
    return s == rows["checksum"]


def test_reader_basics(producer):
    p = producer(capacity=16)
    with cbuf.open(p.path) as r:
        assert r.capacity == 16 and r.row_size == 64 and r.schema_name == "checked"
        assert r.dtype.names == ("index", "payload", "checksum") and r.dtype.itemsize == 64
        assert r.head == 0 and r.latest() is None and len(r.last(5)) == 0
        assert r.state == "live"
        assert p.cmd("write 10") == "ok 10"
        assert r.head == 10
        assert r.latest()["index"] == 9
        assert r.index == 9  # column attribute: the latest row's value
        last = r.last(4)
        assert list(last["index"]) == [6, 7, 8, 9] and checksums_ok(last).all()
        assert len(r.last(100)) == 10
        res = r.rows(2, 5)
        assert list(res.rows["index"]) == [2, 3, 4] and res.first == 2 and res.lost == 0
        assert p.cmd("write 20") == "ok 30"  # capacity 16: rows 0..13 are gone
        res = r.rows(10, 20)
        assert res.first == 14 and res.lost == 4 and res.lost_range == range(10, 14)
        assert list(res.rows["index"]) == list(range(14, 20))
        h = r.header
        assert h["capacity"] == 16 and h["producer_pid"] == p.p.pid and h["version"] == cbuf._core.FORMAT_VERSION == (1, 1)
        assert "head=30" in repr(r)
    assert r.closed
    with pytest.raises(ValueError, match="closed"):
        r.latest()


def test_cursor_reports_exact_loss(producer):
    p = producer(capacity=8)
    r = cbuf.open(p.path)
    p.cmd("write 3")
    b = r.read_new()
    assert list(b.rows["index"]) == [0, 1, 2] and b.first == 0 and b.lost == 0
    p.cmd("write 20")  # head 23, capacity 8: rows 3..14 lost
    b = r.read_new(max=3)
    assert b.lost == 12 and b.lost_range == range(3, 15)
    assert list(b.rows["index"]) == [15, 16, 17]
    b = r.read_new()
    assert list(b.rows["index"]) == list(range(18, 23)) and b.lost == 0
    assert r.lost_total == 12
    r.close()


def test_read_new_into_a_caller_array(producer):
    p = producer(capacity=8)
    r = cbuf.open(p.path)
    buf = np.zeros(4, dtype=r.dtype)
    p.cmd("write 6")
    b = r.read_new(out=buf)
    assert np.shares_memory(b.rows, buf) and list(b.rows["index"]) == [0, 1, 2, 3]
    b = r.read_new(max=1, out=buf)
    assert list(b.rows["index"]) == [4] and buf["index"][0] == 4
    p.cmd("write 20")  # lapped: the loss is reported exactly as without out=
    b = r.read_new(out=buf)
    assert b.lost == 13 and b.lost_range == range(5, 18) and list(b.rows["index"]) == [18, 19, 20, 21]
    assert list(r.read_new(out=buf).rows["index"]) == [22, 23, 24, 25]
    e = r.read_new(out=buf)  # nothing new: empty, at the cursor, and so again after more rows are read
    assert len(e.rows) == 0 and e.first == r.cursor == 26 and e.lost == 0 and e.lost_range == range(26, 26)
    p.cmd("write 1")
    assert list(r.read_new(out=buf).rows["index"]) == [26]
    e = r.read_new(out=buf)
    assert len(e.rows) == 0 and e.first == 27
    with pytest.raises(ValueError, match="dtype"):
        r.read_new(out=np.zeros(4, dtype=np.uint8))
    with pytest.raises(ValueError, match="1-D"):
        r.read_new(out=np.zeros((2, 2), dtype=r.dtype))
    r.close()


def test_start_positions(producer):
    p = producer(capacity=8)
    p.cmd("write 12")
    assert cbuf.open(p.path, start="oldest").read_new().first == 4
    assert cbuf.open(p.path, start="newest").read_new().first == 11
    assert len(cbuf.open(p.path, start="end").read_new().rows) == 0
    b = cbuf.open(p.path, start=0).read_new()
    assert b.lost == 4 and b.first == 4


def test_fast_producer_sleeping_reader_exact_loss_no_torn_rows(producer):
    total = 300_000
    p = producer(capacity=4096)
    r = cbuf.open(p.path, start=0)
    p.send(f"pace {total} 0")
    received = lost = 0
    expected = 0
    while expected < total:
        b = r.read_new(max=1000)
        if b.lost:
            assert b.lost_range.start == expected
            expected += b.lost
            lost += b.lost
        if len(b.rows):
            idx = b.rows["index"]
            assert b.first == expected
            assert (idx == np.arange(expected, expected + len(idx), dtype=np.uint64)).all()  # strictly increasing
            assert checksums_ok(b.rows).all()  # never a torn row
            expected += len(idx)
            received += len(idx)
        else:
            r.wait(1.0)
        time.sleep(0.002)  # a reader that dawdles: it gets lapped
    assert p.p.stdout.readline().strip() == f"ok {total}"
    assert received + lost == total
    assert lost > 0 and received > 0


def test_wait_returns_promptly_and_times_out(producer):
    p = producer()
    r = cbuf.open(p.path, start="end")
    t0 = time.monotonic()
    assert r.wait(0.2) is False
    assert 0.2 <= time.monotonic() - t0 < 2.0
    threading.Timer(0.1, lambda: p.cmd("write 1")).start()
    t0 = time.monotonic()
    assert r.wait(10) is True
    assert time.monotonic() - t0 < 2.0
    assert len(r.read_new().rows) == 1


def test_ctrl_c_interrupts_wait(producer):
    p = producer()
    r = cbuf.open(p.path, start="end")
    threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        r.wait(30)
    assert time.monotonic() - t0 < 5


def test_closed_and_killed_producers_are_visible_and_data_stays_readable(producer):
    p = producer(name="closed")
    p.cmd("write 5")
    r = cbuf.open(p.path)
    assert p.cmd("close") == "ok closed"
    assert r.state == "closed"
    assert len(r.read_new().rows) == 5
    batches = list(cbuf.open(p.path))  # iteration ends when a closed buffer is drained
    assert sum(len(b.rows) for b in batches) == 5

    q = producer(name="killed")
    q.cmd("write 7")
    r2 = cbuf.open(q.path)
    assert r2.state == "live"
    q.p.send_signal(signal.SIGKILL)
    q.p.wait()
    deadline = time.monotonic() + 1.0
    while r2.state != "dead" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert r2.state == "dead"
    assert list(r2.last(7)["index"]) == list(range(7))


def test_bad_input_raises_clear_python_errors(shm_dir, producer):
    with pytest.raises(cbuf.NotFoundError, match="no such buffer") as e:
        cbuf.open(shm_dir / "missing")
    assert isinstance(e.value, FileNotFoundError) and e.value.code == "not_found"
    junk = shm_dir / "junk"
    junk.write_bytes(b"x" * 4096)
    with pytest.raises(cbuf.FormatError, match="not a cbuf buffer") as e:
        cbuf.open(junk)
    assert e.value.code == "bad_magic" and e.value.path == str(junk)
    with pytest.raises(cbuf.FormatError):
        cbuf.open(shm_dir)  # a directory
    p = producer()
    with pytest.raises(cbuf.SchemaMismatchError, match="'checked'.*'sensors'"):
        cbuf.Reader(p.path, expect_fingerprint=0x1234, expect_name="sensors")


def test_zero_copy_view_is_read_only_and_survives_close(producer):
    p = producer(capacity=8)
    p.cmd("write 3")
    r = cbuf.open(p.path)
    v = r.view()
    assert not v.flags.writeable
    assert list(v["index"][:3]) == [0, 1, 2]
    with pytest.raises(ValueError):
        v["index"][0] = 5
    r.close()
    del r
    p.cmd("write 1")
    assert v["index"][3] == 3  # still mapped: the view's base holds the mapping


def test_to_pandas(producer):
    pd = pytest.importorskip("pandas")
    p = producer(capacity=8)
    p.cmd("write 3")
    df = cbuf.open(p.path).to_pandas()
    assert list(df.index) == [0, 1, 2] and list(df["index"]) == [0, 1, 2]
    assert "payload[5]" in df.columns and isinstance(df, pd.DataFrame)


def test_pace_is_the_runtimes_pacing(producer):
    """pace= reaches the C++ reader: a reader the producer outruns is paced (rows wait out the pause), pace=0
    never is, and a bad value is one clear error."""
    p = producer(capacity=4096)
    with pytest.raises(ValueError, match="pace must be"):
        cbuf.Reader(p.path, pace=-1)
    with cbuf.Reader(p.path, pace=0.05) as paced, cbuf.Reader(p.path, pace=0) as unpaced:
        for k in range(8):  # several rows at each catch-up, 8 times: the reader is paced now
            assert p.cmd("write 3") == f"ok {3 * (k + 1)}"
            assert len(paced.read_new().rows) == 3 and len(unpaced.read_new().rows) == 3
        assert p.cmd("write 40") == "ok 64"
        assert len(paced.read_new().rows) == 0  # within the pause: left alone
        assert len(unpaced.read_new().rows) == 40
        time.sleep(0.06)
        r = paced.read_new()
        assert len(r.rows) == 40 and r.first == 24 and not r.lost


def test_open_a_name_a_letter_off_says_which_buffers_are_there(producer, shm_dir):
    """Issue 29: the cbuf command said "did you mean", cbuf.open did not."""
    producer(capacity=8, name="sensors_a")
    with pytest.raises(cbuf.NotFoundError, match="did you mean 'sensors_a'") as e:
        cbuf.open("sensor_a", dir=str(shm_dir), attach_timeout=0)
    assert e.value.code == "not_found"


def test_pacing_counters_show_whether_the_reader_was_paced(shm_dir):
    """Reader.pacing (issue 34): a reader the producer outruns (several rows per catch-up) is paced after 8
    catch-ups, and its counters say so; with pace=0 nothing is counted."""
    import cbuf
    schema = {"name": "pc", "capacity": 4096, "columns": [{"name": "i", "type": "uint64"}]}
    with cbuf.create(schema, name=str(shm_dir / "pc"), keep=False) as p:
        r = cbuf.open(p.path, pace=0.05)  # a long pause: it cannot run out between two statements
        off = cbuf.open(p.path, pace=0)
        for i in range(8):
            p.write_batch(np.arange(3 * i, 3 * i + 3, dtype=np.uint64).view(p.dtype))
            assert len(r.read_new().rows) == 3 and len(off.read_new().rows) == 3
        assert r.pacing == {"catch_ups": 8, "pauses": 1, "rows_after_pauses": 0, "paced": True}
        p.write_batch(np.arange(24, 64, dtype=np.uint64).view(p.dtype))
        assert len(r.read_new().rows) == 0  # paused: the rows wait
        time.sleep(0.06)
        assert len(r.read_new().rows) == 40
        assert r.pacing == {"catch_ups": 9, "pauses": 2, "rows_after_pauses": 40, "paced": True}
        assert off.pacing == {"catch_ups": 0, "pauses": 0, "rows_after_pauses": 0, "paced": False}
        r.close()
        off.close()
