"""C++ producer -> Python: values written by the generated C++ producer read back equal through the generated
NumPy dtype and the plain-NumPy reader of docs/format.md (docs/examples/numpy_reader.py)."""
import json
import subprocess

import numpy as np
import pytest

import numpy_reader
from cbuf_codegen import load_model
from conftest import generated_module
from roundtrip_values import expected_rows
from test_codegen import EXAMPLES

ROWS = 60
REPO_SCHEMAS = EXAMPLES[0].parent


@pytest.mark.parametrize("schema", EXAMPLES, ids=lambda p: p.stem)
def test_cpp_values_read_back_equal_in_python(schema, test_bin, shm_dir, tmp_path):
    m = load_model(schema)
    path = shm_dir / m.name
    r = subprocess.run([str(test_bin / f"cbuf_roundtrip_{m.name}"), str(path), str(ROWS)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    mod = generated_module(schema, tmp_path)

    indices, rows = numpy_reader.read_latest(str(path), ROWS)
    assert indices == list(range(ROWS))
    assert rows.dtype == np.dtype(rows.dtype)  # built from the embedded schema alone
    assert rows.dtype.names == mod.DTYPE.names
    assert [rows.dtype.fields[n][1] for n in rows.dtype.names] == [mod.DTYPE.fields[n][1] for n in mod.DTYPE.names]
    expected = expected_rows([(c.name, c.type) for c in mod.COLUMNS], mod.DTYPE, ROWS)
    got = rows.view(np.uint8).reshape(ROWS, -1).view(mod.DTYPE).reshape(-1)
    # Byte-identical (NaN payloads, -0.0 and padding included) ...
    assert got.tobytes() == expected.tobytes()
    # ... and the values mean what they should through the dtype.
    if m.name == "all_types":
        assert np.isnan(got["f32"][5]) and got["f32"][0] == -np.inf and got["f32"][3] == np.finfo(np.float32).max
        assert got["i64"][4] == np.iinfo(np.int64).min and got["u64"][0] == 0 and got["u64"][1] == np.iinfo(np.uint64).max
        assert got["name"][0] == bytes(ord("A") + (12 + m) % 26 for m in range(16)) and got["name"][1] == b""
    # The generic reader (dtype from the embedded schema) and the generated typed reader read the same bytes.
    cbuf = pytest.importorskip("cbuf")
    pytest.importorskip("cbuf._core")
    with cbuf.open(path) as r:
        assert r.state == "closed"
        assert r.last(ROWS).tobytes() == expected.tobytes()
    with mod.Reader(str(path)) as typed:
        assert typed.read_new().rows.tobytes() == expected.tobytes()
        last = expected[-1]
        for name in mod.DTYPE.names:
            assert np.asarray(getattr(typed.latest_values, name)).tobytes() == np.asarray(last[name]).tobytes()
    other = "sensors" if m.name != "sensors" else "all_types"
    other_mod = generated_module(REPO_SCHEMAS / f"{other}.json", tmp_path / "other")
    with pytest.raises(cbuf.SchemaMismatchError, match=f"'{m.name}'.*'{other}'"):
        other_mod.Reader(str(path))
    with open(path, "rb") as f:
        header = f.read(128)
    assert int.from_bytes(header[64:72], "little") == mod.FINGERPRINT
    assert json.loads(mod.SCHEMA_JSON)["name"] == m.name


def test_numpy_reader_rejects_lapped_and_torn_copies(producer):
    """The format.md section 11 reader: a slot that holds a later row ends the run (lapped), and a copy that
    changed under it is dropped (torn) - never returned as a row."""
    import mmap
    import sys
    import threading
    import time
    from test_reader import checksums_ok
    p = producer(capacity=8)
    p.cmd("write 20")
    p.cmd("close")
    with open(p.path, "r+b") as f:
        m = mmap.mmap(f.fileno(), 0)
    data_off, cap, slot = 4096, 8, 72
    seq_at = lambda n: data_off + (n % cap) * slot  # noqa: E731
    indices, rows = numpy_reader.read_latest(p.path, 5)
    assert indices == [15, 16, 17, 18, 19] and checksums_ok(rows).all()
    m[seq_at(17):seq_at(17) + 8] = (2 * 25 + 2).to_bytes(8, "little")  # row 17's slot now holds a later row
    assert numpy_reader.read_latest(p.path, 5)[0] == [18, 19]  # consecutive: stops at the lapped row
    m[seq_at(17):seq_at(17) + 8] = (2 * 17 + 2).to_bytes(8, "little")

    # Torn: a writer that laps row 19's slot over and over as a producer does - row n = 27, 35, 43, ... in
    # its turn: odd seq, garbage, the (checksummed) row, even seq, head - so a copy that read garbage is seen
    # changed (the sequence word never comes back to an earlier value).
    good = bytes(m[seq_at(19) + 8:seq_at(19) + 72])
    stop = threading.Event()

    def rewrite():
        n = 19
        while not stop.is_set():
            n += cap
            m[seq_at(n):seq_at(n) + 8] = (2 * n + 1).to_bytes(8, "little")
            m[seq_at(n) + 8:seq_at(n) + 72] = b"\xee" * 64
            m[seq_at(n) + 8:seq_at(n) + 72] = good
            m[seq_at(n):seq_at(n) + 8] = (2 * n + 2).to_bytes(8, "little")
            m[256:264] = (n + 1).to_bytes(8, "little")

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the GIL over often, so the writer runs inside the reader's copy
    t = threading.Thread(target=rewrite)
    t.start()
    returned = dropped = 0
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            idx, rows = numpy_reader.read_latest(p.path, 1)
            if idx:
                assert (idx[0] - 19) % cap == 0 and checksums_ok(rows).all()  # never the garbage
                returned += 1
            else:
                dropped += 1
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(old)
        m.close()
    assert returned > 0 and dropped > 0


def test_skipped_rows_are_lost_for_cbuf_and_for_a_format_1_0_reader(producer, shm_dir):
    """Format 1.1's skip (Producer.skip): cbuf readers report the skipped rows lost, with their exact range; the
    section 11 reader, which knows only format 1.0's rule (a sequence word above the row's committed value: not
    this row), never returns them either."""
    import cbuf
    from cbuf import _core
    src = producer(capacity=64)
    src.cmd("write 10")
    with cbuf.Reader(src.path) as r:
        rows = r.read_new().rows
        relay = _core.Producer("relay", r.row_size, 16, r.schema_json, r.fingerprint, str(shm_dir))
    try:
        assert relay.write_batch(rows[:5].tobytes()) == 0
        assert relay.skip(3) == 8
        assert relay.write_batch(rows[8:].tobytes()) == 8
        indices, got = numpy_reader.read_latest(relay.path, 16)
        assert indices == [8, 9] and (got["index"] == [8, 9]).all()
        with cbuf.Reader(relay.path) as rr:
            a, b = rr.read_new(), rr.read_new()
            assert a.first == 0 and len(a.rows) == 5 and not a.lost
            assert b.first == 8 and list(b.rows["index"]) == [8, 9] and b.lost == 3 and b.lost_range == range(5, 8)
    finally:
        relay.close()


@pytest.mark.parametrize("schema", EXAMPLES, ids=lambda p: p.stem)
def test_the_python_producer_writes_what_the_cpp_consumer_expects(schema, test_bin, shm_dir, tmp_path):
    """Issue 29: a public Python producer. The generated module's Producer writes every type (NaN payloads,
    -0.0, infinities, subnormals, extreme integers, full and empty strings) as NumPy rows, dicts and a batch;
    the generated C++ consumer and the typed Python reader read back exactly the C++ pattern."""
    m = load_model(schema)
    mod = generated_module(schema, tmp_path)
    expected = expected_rows([(c.name, c.type) for c in mod.COLUMNS], mod.DTYPE, ROWS)
    path = shm_dir / m.name
    with mod.Producer(str(path), capacity=ROWS) as p:
        assert p.write(expected[0]) == 0                                      # a NumPy row
        p.write({name: expected[1][name] for name in mod.DTYPE.names})        # a dict of NumPy values
        p.write(**{name: expected[2][name].tolist() if expected[2][name].ndim else expected[2][name].item()
                   for name in mod.DTYPE.names if mod.DTYPE[name].kind != "S"},  # keyword Python values ...
                **{name: bytes(expected[2][name]) for name in mod.DTYPE.names if mod.DTYPE[name].kind == "S"})
        assert p.write_batch(expected[3:]) == 3                               # ... and one batch
        assert p.next_index == ROWS
    r = subprocess.run([str(test_bin / f"cbuf_roundtrip_{m.name}"), str(path), str(ROWS), "check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and f"{ROWS} rows written and read back, 0 mismatched" in r.stdout, r.stdout + r.stderr
    with mod.Reader(str(path)) as typed:
        assert typed.last(ROWS).tobytes() == expected.tobytes()


def test_the_python_producer_refuses_values_that_do_not_fit(shm_dir):
    """One clear ValueError naming the column, never a silent cast; cbuf.create takes a schema at run time."""
    import cbuf
    schema = {"name": "fit", "capacity": 8, "columns": [
        {"name": "n", "type": "uint8"}, {"name": "v", "type": "float32[2]"}, {"name": "ok", "type": "bool"},
        {"name": "s", "type": "string[4]"}]}
    with cbuf.create(schema, name=str(shm_dir / "fit")) as p:
        for bad, words in [({"n": 256}, "cannot hold"), ({"n": -1}, "cannot hold"), ({"n": 1.5}, "takes uint8"),
                           ({"v": [1.0]}, "takes float32 x 2"), ({"v": [1e300, 0]}, "cannot hold"),
                           ({"ok": 1}, "takes bool"), ({"s": "toolong"}, "at most 4 bytes"), ({"x": 1}, "no column")]:
            with pytest.raises(ValueError, match=words):
                p.write(bad)
        with pytest.raises(ValueError, match="structured array"):
            p.write_batch(np.zeros(3, dtype=[("n", "u1")]))
        assert p.write(n=255, v=[0.5, -0.0], ok=True, s="abcd") == 0 and p.next_index == 1
        assert p.skip(2) == 3
    with cbuf.open(str(shm_dir / "fit")) as r:
        row = r.latest()
        assert row["n"] == 255 and list(row["v"]) == [0.5, -0.0] and row["s"] == b"abcd"
        assert r.state == "closed"
    with pytest.raises(cbuf.Error, match="columns"):
        cbuf.create({"name": "bad", "capacity": 8, "columns": []}, name=str(shm_dir / "bad"))
