"""The format's edges, from Python (issue 26; the C++ tests are in tests/cpp/test_ring.cpp and test_format.cpp):
the largest row index, a skipped newest row, non-canonical slot sizes, a cursor that starts below base_index."""
import json
import struct
import subprocess
import sys

import numpy as np
import pytest

cbuf = pytest.importorskip("cbuf")
_core = pytest.importorskip("cbuf._core")

SCHEMA = {"name": "edge", "row_size": 16, "columns": [{"name": "i", "type": "uint64", "offset": 0},
                                                      {"name": "x", "type": "float64", "offset": 8}]}


def producer(shm_dir, name="edge", capacity=64, base_index=0):
    return _core.Producer(str(shm_dir / name), 16, capacity, json.dumps(SCHEMA), 0, base_index=base_index)


def rows(first, n):
    d = np.zeros(n, dtype=[("i", "<u8"), ("x", "<f8")])
    d["i"] = np.arange(first, first + n, dtype=np.uint64)
    d["x"] = d["i"] / 2
    return d


def test_a_producer_stops_at_the_index_limit_and_no_phantom_row_is_read(shm_dir):
    limit = _core.INDEX_LIMIT
    assert limit == 2**63 - 2
    with pytest.raises(cbuf.Error, match="beyond the largest row index"):
        producer(shm_dir, "over", base_index=limit + 1)
    p = producer(shm_dir, base_index=limit - 4)
    with cbuf.open(p.path, start="oldest") as r:
        p.write_batch(rows(limit - 4, 4))
        with pytest.raises(cbuf.Error) as e:
            p.write_batch(rows(limit, 1))
        assert e.value.code == "index_limit" and p.next_index == limit
        with pytest.raises(cbuf.Error):
            p.skip(1)
        got = r.read_new()
        assert list(got.rows["i"]) == [limit - 4 + k for k in range(4)]
        for _ in range(200):  # the index at the limit never passes for a row (it did: an all-zero slot)
            assert len(r.read_new().rows) == 0
        assert r.latest()["i"] == limit - 1 and len(r.last(10)) == 4
    p.close()


def test_a_forged_head_beyond_the_limit_is_a_corrupt_header(shm_dir):
    p = producer(shm_dir)
    p.write_batch(rows(0, 4))
    p.close()
    with open(p.path, "r+b") as f:
        f.seek(256)  # the head (docs/format.md section 2)
        f.write(struct.pack("<Q", 2**63))
    with cbuf.open(p.path) as r:
        for call in (r.latest, lambda: r.last(3), lambda: r.rows(0, 4), lambda: r.head):
            with pytest.raises(cbuf.FormatError) as e:
                call()
            assert e.value.code == "corrupt_header"
        with pytest.raises(cbuf.FormatError):
            for _ in range(200):
                r.read_new()


def test_a_skipped_newest_row_hides_no_valid_row(shm_dir, tmp_path):
    p = producer(shm_dir, capacity=16)
    p.write_batch(rows(0, 20))
    p.skip(1)
    with cbuf.open(p.path) as r:
        assert r.latest()["i"] == 19
        assert list(r.last(5)["i"]) == [15, 16, 17, 18, 19]
        got = r.rows(5, 13)
        assert list(got.rows["i"]) == list(range(5, 13)) and got.lost == 0
        got = r.rows(15, 21)  # the skipped row at the end ends the run
        assert list(got.rows["i"]) == list(range(15, 20))
        got = r.rows(20, 21)  # only the skipped row: none, reported lost
        assert len(got.rows) == 0 and got.lost == 1
    out = subprocess.run([sys.executable, "-m", "cbuf.cli", "tail", p.path, "-n", "3"], capture_output=True,
                         text=True)
    assert out.returncode == 0 and "19" in out.stdout and len(out.stdout.strip().splitlines()) == 4, out.stdout
    p.close()
    # The same through a generated typed reader.
    from conftest import generated_module
    schema = tmp_path / "edge.json"
    schema.write_text(json.dumps({"name": "edge", "capacity": 16, "columns": [{"name": "i", "type": "uint64"},
                                                             {"name": "x", "type": "float64"}]}))
    mod = generated_module(str(schema), tmp_path)
    q = _core.Producer(str(shm_dir / "typed"), mod.ROW_SIZE, 16, mod.SCHEMA_JSON, mod.FINGERPRINT)
    q.write_batch(rows(0, 20))
    q.skip(1)
    typed = mod.Reader(q.path)
    assert typed.latest()["i"] == 19 and list(typed.last(2)["i"]) == [18, 19]
    typed.close()
    q.close()


def test_a_non_canonical_slot_size_is_refused(shm_dir):
    p = producer(shm_dir)
    p.write_batch(rows(0, 8))
    p.close()
    with open(p.path, "r+b") as f:  # 32-byte slots over the real 24-byte ones: rows stitched from two slots
        f.seek(40)
        f.write(struct.pack("<I", 32))
    with pytest.raises(cbuf.FormatError, match="slot_size 32 is not 24"):
        cbuf.open(p.path)


def test_a_cursor_below_base_index_counts_the_rows_below_it_lost(shm_dir):
    p = producer(shm_dir, base_index=215)
    with cbuf.open(p.path, start=0) as r:
        first = r.read_new()
        assert len(first.rows) == 0 and first.lost == 215 and first.lost_range == range(0, 215)
        p.write_batch(rows(215, 3))
        got = r.read_new()
        assert list(got.rows["i"]) == [215, 216, 217] and got.lost == 0
        assert r.lost_total == 215
    with cbuf.open(p.path, start=10) as late:
        got = late.read_new()
        assert got.first == 215 and got.lost == 205 and len(got.rows) == 3
    p.close()


# --- docs/format.md section 11: the plain NumPy reader does the checks it claims -----------------------------
def numpy_reader():
    import importlib
    return importlib.import_module("numpy_reader")  # docs/examples, on sys.path (conftest.py)


def test_the_numpy_reader_refuses_a_fifo_a_symlink_and_waits_for_an_unpublished_file(shm_dir, tmp_path):
    import os
    import threading
    import time
    reader = numpy_reader()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with pytest.raises(ValueError, match="not a regular file"):
        reader.read_latest(str(fifo), 5)  # it used to block forever in open()
    assert time.monotonic() - t0 < 1
    p = producer(shm_dir)
    p.write_batch(rows(0, 10))
    p.close()
    link = tmp_path / "link"
    link.symlink_to(p.path)
    with pytest.raises(OSError):
        reader.read_latest(str(link), 5)  # never followed
    data = open(p.path, "rb").read()
    late = tmp_path / "late"
    late.write_bytes(bytes(8) + data[8:])  # everything but the magic: not published yet
    with pytest.raises(ValueError, match="not a published"):
        reader.read_latest(str(late), 5, attach_timeout=0.2)  # polls, then gives up

    def publish():
        time.sleep(0.2)
        with open(late, "r+b") as f:
            f.write(data[:8])
    t = threading.Thread(target=publish)
    t.start()
    idx, got = reader.read_latest(str(late), 5)  # polls until the magic appears (it used to refuse at once)
    t.join()
    assert idx == [5, 6, 7, 8, 9] and list(got["i"]) == idx


def compact(schema) -> str:
    return json.dumps(schema, separators=(",", ":"))  # shorter than the embedded text: room to add to it


SCHEMA_CASES = {
    "bom": b"\xef\xbb\xbf" + compact(SCHEMA).encode(),
    "utf16": compact(SCHEMA).encode("utf-16"),
    "nan": compact({**SCHEMA, "x": float("nan")}).encode(),
    "leading zero": compact({**SCHEMA, "columns": [{"name": "i", "type": "uint64[01]", "offset": 0}]}).encode(),
    "zero length": compact({**SCHEMA, "columns": [{"name": "i", "type": "uint64[0]", "offset": 0}]}).encode(),
    "deep": b'{"a":' * 40 + b"1" + b"}" * 40,
    "twice": compact(SCHEMA).replace('"name":"edge"', '"name":"edge","name":"evil"').encode(),
    "nul": compact(SCHEMA).encode() + b"\0garbage",
    "lone surrogate": compact(SCHEMA).replace('"edge"', '"\\ud800"').encode(),
}


@pytest.mark.parametrize("case", sorted(SCHEMA_CASES))
def test_the_numpy_reader_and_the_runtime_refuse_the_same_schemas(shm_dir, case):
    """Two readers of one file see one schema or refuse it: the runtime (cbuf.open) and section 11's reader
    agree on each case section 3 step 7 names."""
    padded = json.dumps({**SCHEMA, "description": "-" * 600})  # room for each case's text
    p = _core.Producer(str(shm_dir / "src"), 16, 4, padded, 0)
    p.write_batch(rows(0, 2))
    p.close()
    data = bytearray(open(p.path, "rb").read())
    off, size = struct.unpack_from("<QQ", data, 48)
    text = SCHEMA_CASES[case]
    assert len(text) <= size
    data[off:off + size] = text.ljust(size, b" ")
    bad = shm_dir / "bad"
    bad.write_bytes(bytes(data))
    with pytest.raises(cbuf.FormatError):
        cbuf.open(str(bad))
    with pytest.raises(ValueError):
        numpy_reader().read_latest(str(bad), 2)


def test_the_numpy_reader_keeps_up_with_a_fast_64_row_ring(test_bin, shm_dir):
    """A C++ producer laps a 64-row ring as fast as it can: the reader re-reads the head and retries when the
    newest row is overwritten under it (section 6, "Latest row"), so most calls return rows - it returned
    nothing on 69 % of them - and every row it returns is valid and in a consecutive run."""
    import time
    from conftest import Producer
    from test_reader import checksums_ok
    reader = numpy_reader()
    p = Producer(test_bin, shm_dir / "fast", 64)
    try:
        p.send("write 400000000")  # about as long as the loop below, at full speed
        calls = returned = 0
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            idx, got = reader.read_latest(p.path, 5)
            calls += 1
            if idx:
                returned += 1
                assert idx == list(range(idx[0], idx[0] + len(idx))) and list(got["index"]) == idx
                assert checksums_ok(got).all()
        assert calls > 100 and returned / calls > 0.5, (returned, calls)
    finally:
        p.stop()
