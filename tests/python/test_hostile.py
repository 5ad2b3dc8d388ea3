"""Readers survive anything another process does to the file (issue: readers that survive anything).

A hostile writer (tests/helpers/hostile_writer.cpp) rewrites the header, the schema and the sequence words, or truncates
the file, while Python readers, `cbuf` commands and C++ processes read it: no crash, no wrong row, one clear
error. Also: close() and cursor calls from several threads, hostile schema JSON, and misleading arguments.
"""
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

cbuf = pytest.importorskip("cbuf")
pytest.importorskip("cbuf._core")

from test_reader import checksums_ok  # noqa: E402


def hostile(test_bin, path, mode, seconds, seed=1):
    w = subprocess.Popen([str(test_bin / "cbuf_hostile_writer"), str(path), mode, str(seconds), str(seed)],
                         stdout=subprocess.PIPE, text=True)
    assert w.stdout.readline() == "running\n"
    return w


def filled(producer, capacity=64, name="buf"):
    p = producer(capacity=capacity, name=name)
    p.cmd(f"write {3 * capacity}")
    return p


def read_everything(path, capacity, exact):
    """One attach and every read; returns (rows checked, wrong rows). Raises only cbuf.Error."""
    checked = wrong = 0

    def check(rows, first):
        nonlocal checked, wrong
        if rows.dtype.names != ("index", "payload", "checksum") or len(rows) == 0:
            return
        idx = np.arange(first, first + len(rows), dtype=np.uint64)
        good = checksums_ok(rows) & (rows["index"] % capacity == idx % capacity)
        if exact:
            good &= rows["index"] == idx
        checked += len(rows)
        wrong += int((~good).sum())

    with cbuf.open(path, attach_timeout=0) as r:
        r.header, r.state, r.schema, repr(r)
        latest = r.latest()
        if latest is not None and r.dtype.names == ("index", "payload", "checksum"):
            checked += 1
            wrong += int(not checksums_ok(np.array([latest], dtype=r.dtype))[0])
        res = r.last_indexed(16)
        check(res.rows, res.first)
        r.seek(max(0, r.head - 40))
        for _ in range(3):
            res = r.read_new(16)
            check(res.rows, res.first)
        res = r.rows(max(0, r.head - 10), r.head + 4)
        check(res.rows, res.first)
        r.wait(0.0005)
    return checked, wrong


@pytest.mark.parametrize("mode,exact", [("geometry", True), ("all", False), ("truncate", True)])
def test_hostile_writer_never_crashes_a_python_reader(producer, test_bin, mode, exact):
    p = filled(producer)
    p.cmd("close")
    w = hostile(test_bin, p.path, mode, 1.5, seed=5)
    attached = refused = checked = wrong = 0
    codes = set()
    while w.poll() is None:
        try:
            c, bad = read_everything(p.path, 64, exact)
            attached += 1
            checked += c
            wrong += bad
        except cbuf.Error as e:
            refused += 1
            codes.add(e.code)
    assert w.wait() == 0
    assert wrong == 0
    assert attached + refused > 0
    assert codes <= {"corrupt_header", "bad_schema_json", "unsupported_version", "truncated", "bad_magic",
                     "not_published", "empty_file"}, codes
    if mode == "geometry":  # the real geometry is back every other flip: readers get through
        assert attached > 0 and checked > 0


@pytest.mark.parametrize("size", [0, 4096])
def test_truncation_under_a_python_reader_raises_and_keeps_raising(producer, size):
    p = producer(capacity=4096)
    p.cmd("write 1000")
    r = cbuf.open(p.path, start=0)
    assert len(r.read_new().rows) == 1000
    p.send("pace 100000 20")
    os.truncate(p.path, size)
    with pytest.raises(cbuf.FormatError, match="shrank under this reader") as e:
        for _ in range(10000):
            r.read_new()
            r.last(100)
    assert e.value.code == "truncated" and e.value.path == p.path
    assert r.truncated
    for call in (r.latest, lambda: r.last(10), lambda: r.read_new(), lambda: r.head, lambda: r.state):
        with pytest.raises(cbuf.FormatError, match="shrank"):
            call()
    r.close()


def test_truncation_under_cbuf_tail_f_is_one_line_and_exit_1(producer):
    p = producer(capacity=4096)
    p.cmd("write 10")
    tail = subprocess.Popen([sys.executable, "-m", "cbuf.cli", "tail", "-f", p.path], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    p.send("pace 100000 50")
    time.sleep(0.2)
    os.truncate(p.path, 0)
    _, err = tail.communicate(timeout=20)
    assert tail.returncode == 1, err
    assert "Traceback" not in err and err.count("\n") == 1 and "shrank" in err and p.path in err


def test_truncation_under_cpp_consumer_and_producer_processes(producer, test_bin):
    p = producer(capacity=4096)
    p.cmd("write 10")
    consumer = subprocess.Popen([str(test_bin / "cbuf_torture_proc"), "consumer", p.path, str(10**12), "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert consumer.stdout.readline() == "attached\n"
    p.send("pace 2000 100")
    time.sleep(0.05)
    os.truncate(p.path, 4096)
    out, err = consumer.communicate(timeout=20)
    assert consumer.returncode == 1 and "shrank under this reader" in err, (out, err)
    # The producer process wrote on into the lost pages, survived, and reports it when it closes.
    assert p.p.stdout.readline().startswith("ok")
    p.send("write 100")
    assert p.p.stdout.readline().startswith("ok")
    p.send("close")
    p.p.stdin.close()
    assert p.p.wait(timeout=20) == 1
    assert "truncated by another process" in p.p.stderr.read()


@pytest.mark.parametrize("call", ["read_new", "wait_block", "wait_sleep", "wait_spin", "wait_yield"])
def test_close_from_another_thread_never_crashes(producer, call):
    p = producer(capacity=4096)
    p.cmd("write 4096")
    for _ in range(20):
        r = cbuf.open(p.path, start=0)
        errors = []

        def work():
            try:
                while True:
                    if call == "read_new":
                        r.read_new()  # 256 KiB copies: the GIL is released during them
                        r.seek(0)
                    else:
                        r.seek(r.head)
                        r.wait(0.2, idle=call.split("_")[1])
            except ValueError as e:
                errors.append(e)

        t = threading.Thread(target=work)
        t.start()
        time.sleep(0.01)
        r.close()
        t.join(timeout=10)
        assert not t.is_alive()
        assert len(errors) == 1 and "closed" in str(errors[0])


def test_four_threads_on_one_reader_get_every_row_once(producer):
    p = producer(capacity=1 << 16)
    r = cbuf.open(p.path, start=0)
    total = 200000
    p.send(f"pace {total} 0")
    batches = []
    lock = threading.Lock()

    def work(seed):
        rng = np.random.default_rng(seed)
        mine = []
        while True:
            res = r.read_new(int(rng.integers(1, 5000)))
            if len(res.rows) or res.lost:
                mine.append((res.first, res.rows["index"].copy(), checksums_ok(res.rows).all(), res.lost_range))
            elif r.cursor >= total:
                break
        with lock:
            batches.extend(mine)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    seen = np.zeros(total, dtype=np.int64)
    lost = 0
    for first, idx, ok, lost_range in batches:
        assert ok
        assert (idx == np.arange(first, first + len(idx))).all()  # every row's own index is first + i
        seen[idx] += 1
        seen[lost_range.start:lost_range.stop] += 1
        lost += len(lost_range)
    assert (seen == 1).all()  # each index received or reported lost exactly once
    assert lost == r.lost_total
    r.close()


def _with_schema(producer, shm_dir, name, text: bytes):
    """A copy of a valid buffer whose embedded schema JSON is replaced by `text` (space-padded)."""
    p = filled(producer, name="src_" + name)
    p.cmd("close")
    data = bytearray(open(p.path, "rb").read())
    h = cbuf.open(p.path).header
    assert len(text) <= h["schema_size"]
    data[h["schema_offset"]:h["schema_offset"] + h["schema_size"]] = text.ljust(h["schema_size"], b" ")
    path = shm_dir / name
    path.write_bytes(bytes(data))
    return str(path)


HOSTILE_SCHEMAS = {
    "type_number": b'{"name":"x","columns":[{"name":"a","type":5,"offset":0}]}',
    "type_null": b'{"name":"x","columns":[{"name":"a","type":null,"offset":0}]}',
    "huge_offset": b'{"name":"x","columns":[{"name":"a","type":"uint8","offset":1000000000000000000000000000000}]}',
    "bom": b'\xef\xbb\xbf{"name":"x","columns":[{"name":"a","type":"uint8","offset":0}]}',
    "past_row": b'{"name":"x","columns":[{"name":"a","type":"uint64[8]","offset":8}]}',
    "duplicate": b'{"name":"x","columns":[{"name":"a","type":"uint8","offset":0},{"name":"a","type":"uint8","offset":1}]}',
    "columns_object": b'{"name":"x","columns":{"a":1}}',
    # Text after a NUL: a reader that stops at the NUL and one that does not saw two schemas in one file.
    "nul_end": b'{"name":"x","columns":[{"name":"a","type":"uint8","offset":0}]}\x00',
    "nul_garbage": b'{"name":"x","columns":[{"name":"a","type":"uint8","offset":0}]}\x00garbage',
    "nul_other_schema": b'{"name":"x","columns":[{"name":"a","type":"uint8","offset":0}]}\x00{"name":"evil"}',
    # The tools' row index field as a column: tail --csv printed it twice, JSON/MCAP/Foxglove lost the real one.
    "tool_field": b'{"name":"x","columns":[{"name":"row_index","type":"uint8","offset":0}]}',
    # A key twice: parsers differ on which one counts.
    "duplicate_key": b'{"name":"x","name":"y","columns":[{"name":"a","type":"uint8","offset":0}]}',
    "duplicate_key_inside": b'{"name":"x","columns":[{"name":"a","type":"uint8","type":"int8","offset":0}]}',
}


@pytest.mark.parametrize("case", sorted(HOSTILE_SCHEMAS))
def test_hostile_schema_json_is_one_clear_error_everywhere(producer, shm_dir, case):
    path = _with_schema(producer, shm_dir, case, HOSTILE_SCHEMAS[case])
    with pytest.raises(cbuf.FormatError) as e:
        cbuf.open(path)
    assert e.value.code == "bad_schema_json" and path in str(e.value)
    for cmd in (["info", path], ["tail", path]):
        r = subprocess.run([sys.executable, "-m", "cbuf.cli", *cmd], capture_output=True, text=True)
        assert r.returncode == 1 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert "embedded schema" in r.stderr
    # ls goes on: the damaged file is listed as invalid with the reason, the good one as usual.
    r = subprocess.run([sys.executable, "-m", "cbuf.cli", "ls", str(shm_dir), "--json"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and "Traceback" not in r.stderr
    entries = {e["name"]: e for e in json.loads(r.stdout)}
    assert entries[case]["state"] == "invalid" and "embedded schema" in entries[case]["error"]
    assert entries["src_" + case]["state"] == "closed"
    table = subprocess.run([sys.executable, "-m", "cbuf.cli", "ls", str(shm_dir)], capture_output=True, text=True)
    assert f"{case}  invalid: " in table.stdout and table.returncode == 0


def test_misleading_arguments_get_clear_errors(producer):
    p = filled(producer)
    with pytest.raises(TypeError, match="NoneType"):
        cbuf.open(None)
    with pytest.raises(TypeError, match="start must be"):
        cbuf.open(p.path, start=1.5)
    with pytest.raises(ValueError, match="start must be 'oldest', 'newest', 'end' or a row index, not 'index'"):
        cbuf.open(p.path, start="index")  # the binding's own member, not an option
    with pytest.raises(ValueError, match="start index"):
        cbuf.open(p.path, start=-1)
    with pytest.raises(ValueError, match="NUL"):
        cbuf.open("buf\0x")
    with cbuf.open(os.fsencode(p.path)) as r:  # bytes paths work as for open()
        assert r.path == p.path
        assert len(r.read_new(max=10**12).rows) == 64  # capped at the capacity, no MemoryError
        res = r.rows(0, 10**12)
        assert len(res.rows) == 64 and res.first == 128 and res.lost == 128
        with pytest.raises(ValueError, match="max must be >= 0"):
            r.read_new(max=-1)
        with pytest.raises(ValueError, match="row index"):
            r.rows(-5, 3)
        with pytest.raises(TypeError, match="integer"):
            r.last("3")
