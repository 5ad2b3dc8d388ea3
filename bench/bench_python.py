"""Python benchmarks: cbuf's reader against np.copyto, multiprocessing.shared_memory + NumPy and iceoryx2's
Python bindings, measured in the same run, alternating rounds (the order rotates every round).

    ./dev.sh bench                              (runs this after the C++ benchmarks)
    PYTHONPATH=build/python .venv/bin/python bench/bench_python.py [--rounds R] [--json FILE] [--quick]

Snapshot: a copy of the newest n rows (64 bytes each) into a NumPy array, n = 64 .. 262144.
  cbuf last(n)       validated copy (a sequence check per row) into a fresh array
  cbuf rows(a, b)    the same through an explicit index range
  np.copyto          the same row bytes from the same mapping, no validation, no allocation (the baseline)
  shared_memory      np.copyto from a multiprocessing.shared_memory ring; no synchronisation at all: the
                     fastest unsafe way (a writer can tear the rows it copies)
  iceoryx2           the n rows published as one slice sample; receive + copy into NumPy (the send is not
                     timed, so iceoryx2 is favoured)
Per-row receive latency: a producer process (CPU 0) stamps a row with time.monotonic_ns() and sends it; this
process (CPU 1) polls for it, records now - stamp and acknowledges through shared memory before the next one.
  cbuf               Reader.read_new(out=buf) polled, into a preallocated one-row array
  cbuf (allocating)  Reader.read_new(1) polled: a new array per call
  shared_memory      a head counter and a row in shared memory, polled (unsafe: no torn-row detection)
  iceoryx2           Subscriber.receive() polled
Bridge (cbuf bridge over Zenoh, tcp/127.0.0.1): rows/s delivered to a cbuf.bridge.subscribe() reader from a
`cbuf bridge pub` process following a buffer that a producer process fills as fast as it can, against a plain
Zenoh publisher putting messages of the same size (the bridge's header and a full batch of rows) in the same
run, beside the same producer process filling a buffer nobody reads (the data source costs the same CPU in
both: two cores here). Both block under congestion, so the figure is what the link carries. Then one-way
latency of single rows written every ms (time.time_ns() stamps, one host), through the bridge and through
plain Zenoh.
"""
import argparse
import ctypes
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
import uuid
from multiprocessing import shared_memory

import numpy as np

import cbuf
from cbuf import _core

SIZES = (64, 256, 1024, 4096, 16384, 65536, 262144)
ROW = 64
SCHEMA = json.dumps({"name": "bench", "capacity": max(SIZES), "row_size": ROW,
                     "columns": [{"name": "w", "type": "uint64[8]", "offset": 0}]})

try:
    import iceoryx2 as iox2
    ICEORYX2 = None
except ImportError as e:  # optional peer
    iox2 = None
    ICEORYX2 = f"iceoryx2 is not installed ({e}); ./dev.sh bench-deps installs it into .venv"


def pin(cpu):
    try:
        os.sched_setaffinity(0, {cpu % os.cpu_count()})
    except OSError as e:
        print(f"warning: cannot pin to CPU {cpu}: {e}", file=sys.stderr)


def timeit(fn, min_time=0.05):
    """Seconds per call: the best of three batches of calls lasting at least min_time each."""
    calls, best = 1, float("inf")
    while True:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        if time.perf_counter() - t0 >= min_time:
            break
        calls *= 2
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def stats(values):
    return statistics.median(values), min(values), max(values)


# --- snapshots ---------------------------------------------------------------------------------------------
class Ice2Snapshot:
    """n rows published as one iceoryx2 slice sample, then received and copied into NumPy."""

    def __init__(self, rows):
        self.node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
        name = iox2.ServiceName.new(f"cbuf-bench-snapshot-{uuid.uuid4().hex}")
        svc = (self.node.service_builder(name).publish_subscribe(iox2.Slice[ctypes.c_uint8])
               .subscriber_max_buffer_size(2).open_or_create())
        self.pub = (svc.publisher_builder().initial_max_slice_len(rows.nbytes)
                    .allocation_strategy(iox2.AllocationStrategy.PowerOfTwo).create())
        self.sub = svc.subscriber_builder().create()
        self.rows = rows

    def time_receive(self, n, calls):
        """Seconds per receive + copy of n rows (each call preceded by an untimed send)."""
        src = self.rows[-n:].view(np.uint8).reshape(-1)
        total = 0.0
        for _ in range(calls):
            s = self.pub.loan_slice_uninit(n * ROW)
            np.frombuffer(s.payload().as_memory_view(), dtype=np.uint8)[:] = src
            s.assume_init().send()
            t0 = time.perf_counter()
            sample = self.sub.receive()
            out = np.frombuffer(sample.payload().as_memory_view(), dtype=self.rows.dtype).copy()
            sample.delete()
            total += time.perf_counter() - t0
            assert len(out) == n
        return total / calls


def bench_snapshot(rounds, quick, results):
    cap = max(SIZES)
    name = f"/dev/shm/cbuf_bench_py_{os.getpid()}"
    p = _core.Producer(name, ROW, cap, SCHEMA, 0, on_close=_core.OnClose.unlink)
    p.write_batch(np.arange(cap * 8, dtype=np.uint64))
    r = cbuf.open(name)
    view = r.view()  # zero-copy rows, stride 72 (the slot): the same bytes cbuf copies
    shm = shared_memory.SharedMemory(create=True, size=cap * ROW)
    try:
        ring = np.ndarray((cap,), dtype=r.dtype, buffer=shm.buf)
        ring[:] = view
        ice = Ice2Snapshot(np.array(view)) if iox2 else None
        print("\n== Python snapshot of the newest n rows into NumPy, us per call; "
              "ratio = np.copyto time / cbuf last(n) time (higher is better)")
        print(f"{'rows':>8} {'cbuf last':>10} {'cbuf rows':>10} {'np.copyto':>10} {'shm (unsafe)':>13} "
              f"{'iceoryx2':>10}  {'ratio vs copyto':>22}  {'iceoryx2 / cbuf':>20}")
        for n in SIZES if not quick else SIZES[::2]:
            dst = np.empty(n, dtype=r.dtype)
            src = view[cap - n:]
            shm_src = ring[cap - n:]
            head = r.head
            t = {k: [] for k in ("copyto", "last", "rows", "shm", "iceoryx2")}
            cases = [("copyto", lambda: np.copyto(dst, src)), ("last", lambda: r.last(n)),
                     ("rows", lambda: r.rows(head - n, head)), ("shm", lambda: np.copyto(dst, shm_src))]
            if ice:
                calls = max(20, min(2000, 2_000_000 // n))
                cases.append(("iceoryx2", lambda: ice.time_receive(n, calls)))
            for k in range(rounds):
                for j in range(len(cases)):
                    key, fn = cases[(j + k) % len(cases)]
                    t[key].append(fn() if key == "iceoryx2" else timeit(fn))
            ratio = stats([c / l for c, l in zip(t["copyto"], t["last"])])
            med = {k: statistics.median(v) * 1e6 if v else None for k, v in t.items()}
            rec = {"bench": "python_snapshot", "rows": n, "row_bytes": ROW, "cbuf_last_us": med["last"],
                   "cbuf_rows_us": med["rows"], "copyto_us": med["copyto"], "shm_unsafe_us": med["shm"],
                   "iceoryx2_us": med["iceoryx2"], "ratio_median": ratio[0], "ratio_min": ratio[1],
                   "ratio_max": ratio[2], "rounds": rounds}
            if ice:
                ir = stats([i / l for i, l in zip(t["iceoryx2"], t["last"])])
                rec.update(iceoryx2_ratio_median=ir[0], iceoryx2_ratio_min=ir[1], iceoryx2_ratio_max=ir[2])
            results.append(rec)
            ice_col = f"{med['iceoryx2']:10.1f}" if ice else f"{'skipped':>10}"
            ice_ratio = (f"{rec['iceoryx2_ratio_median']:6.2f} [{rec['iceoryx2_ratio_min']:.2f}-"
                         f"{rec['iceoryx2_ratio_max']:.2f}]") if ice else ""
            print(f"{n:8d} {med['last']:10.1f} {med['rows']:10.1f} {med['copyto']:10.1f} {med['shm']:13.1f} "
                  f"{ice_col}  {ratio[0]:6.2f} [{ratio[1]:.2f}-{ratio[2]:.2f}]  {ice_ratio:>20}")
        if not ice:
            print(f"  iceoryx2 skipped: {ICEORYX2}")
            results.append({"bench": "python_snapshot", "peer": "iceoryx2", "skipped": ICEORYX2})
    finally:
        r.close()
        p.close()
        shm.close()
        shm.unlink()


# --- per-row receive latency -------------------------------------------------------------------------------
class Row(ctypes.Structure):
    _fields_ = [("w", ctypes.c_uint64 * 8)]


def _producer(kind, name, n, ctl_name):
    """Child process: sends n stamped rows, each once the consumer has acknowledged the previous one."""
    pin(0)
    ctl_shm = shared_memory.SharedMemory(name=ctl_name)
    ctl = np.ndarray((2,), dtype=np.int64, buffer=ctl_shm.buf)  # [acknowledged, handshake]
    row = np.zeros(8, dtype=np.uint64)
    if kind.startswith("cbuf"):
        p = _core.Producer(name, ROW, 4096, SCHEMA, 0, on_close=_core.OnClose.unlink)

        def send(ts):
            row[0] = ts
            p.write_batch(row)
    elif kind == "shared_memory":
        shm = shared_memory.SharedMemory(name=name)
        ring = np.ndarray((2, 8), dtype=np.uint64, buffer=shm.buf)  # [0]: head counter, [1]: the row

        def send(ts):
            ring[1, 0] = ts
            ring[0, 0] += 1
    else:
        node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
        svc = node.service_builder(iox2.ServiceName.new(name)).publish_subscribe(Row).open_or_create()
        pub = svc.publisher_builder().create()
        msg = Row()

        def send(ts):
            msg.w[0] = ts
            pub.send_copy(msg)
    ctl[1] = 1
    while ctl[1] != 2:  # the consumer is attached
        if kind == "iceoryx2":
            pub.update_connections()
        time.sleep(0.001)
    if kind == "iceoryx2":
        pub.update_connections()
    for i in range(n):
        while ctl[0] != i:
            pass
        send(time.monotonic_ns())
    while ctl[0] != n:
        pass
    if kind.startswith("cbuf"):
        p.close()
    ctl_shm.close()


def latency_run(kind, n):
    ctl_shm = shared_memory.SharedMemory(create=True, size=16)
    ctl = np.ndarray((2,), dtype=np.int64, buffer=ctl_shm.buf)
    ctl[:] = 0
    data_shm = None
    if kind.startswith("cbuf"):
        name = f"/dev/shm/cbuf_bench_pylat_{os.getpid()}"
    elif kind == "shared_memory":
        data_shm = shared_memory.SharedMemory(create=True, size=2 * ROW)
        np.ndarray((2, 8), dtype=np.uint64, buffer=data_shm.buf)[:] = 0
        name = data_shm.name
    else:
        name = f"cbuf-bench-latency-{uuid.uuid4().hex}"
    child = mp.get_context("spawn").Process(target=_producer, args=(kind, name, n, ctl_shm.name))
    child.start()
    lat = np.empty(n, dtype=np.int64)
    r = None  # the cbuf reader, once attached
    try:
        while ctl[1] != 1:
            if not child.is_alive():
                raise RuntimeError(f"{kind} producer exited with {child.exitcode}")
            time.sleep(0.001)
        if kind == "cbuf":
            r = cbuf.open(name, start="end")
            buf = np.zeros(1, dtype=r.dtype)
            w = buf["w"]  # a view of the column: reading it costs no field lookup

            def recv():
                return int(w[0, 0]) if len(r.read_new(out=buf).rows) else None
        elif kind == "cbuf_alloc":
            r = cbuf.open(name, start="end")

            def recv():
                got = r.read_new(1).rows
                return int(got["w"][0, 0]) if len(got) else None
        elif kind == "shared_memory":
            ring = np.ndarray((2, 8), dtype=np.uint64, buffer=data_shm.buf)
            seen = [0]

            def recv():
                h = int(ring[0, 0])
                if h == seen[0]:
                    return None
                seen[0] = h
                return int(ring[1, 0])
        else:
            node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
            svc = node.service_builder(iox2.ServiceName.new(name)).publish_subscribe(Row).open_or_create()
            sub = svc.subscriber_builder().create()

            def recv():
                s = sub.receive()
                if s is None:
                    return None
                ts = s.payload().contents.w[0]
                s.delete()
                return ts
        ctl[1] = 2
        for i in range(n):
            ts = recv()
            while ts is None:
                ts = recv()
            lat[i] = time.monotonic_ns() - ts
            ctl[0] = i + 1
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
            child.join()
        if r is not None:
            r.close()
        ctl_shm.close()
        ctl_shm.unlink()
        if data_shm:
            data_shm.close()
            data_shm.unlink()
    lat = lat[n // 10:]  # the first tenth warms up caches and the interpreter
    return [float(np.percentile(lat, q)) for q in (50, 99, 99.9)]


LATENCY_LABELS = {"cbuf": "cbuf read_new(out=buf)", "cbuf_alloc": "cbuf read_new(1)",
                  "shared_memory": "shared_memory (unsafe)", "iceoryx2": "iceoryx2 receive()"}


def bench_latency(rounds, quick, results):
    n = 2000 if quick else 20000
    kinds = ["cbuf", "cbuf_alloc", "shared_memory"] + (["iceoryx2"] if iox2 else [])
    pin(1)
    figs = {k: [] for k in kinds}
    for k in range(rounds):
        for j in range(len(kinds)):
            kind = kinds[(j + k) % len(kinds)]
            figs[kind].append(latency_run(kind, n))
    print("\n== Python per-row receive latency, one-way, ns; producer process on CPU 0, Python consumer polling "
          "on CPU 1; ratio = p50 / cbuf p50")
    print(f"{'reader':<28} {'p50':>8} {'p99':>8} {'p99.9':>8}  ratio median [min-max]")
    cb = [f[0] for f in figs["cbuf"]]
    for kind in kinds:
        p50 = [f[0] for f in figs[kind]]
        ratio = stats([a / b for a, b in zip(p50, cb)])
        med = [statistics.median(f[i] for f in figs[kind]) for i in range(3)]
        label = LATENCY_LABELS[kind]
        print(f"{label:<28} {med[0]:8.0f} {med[1]:8.0f} {med[2]:8.0f}  {ratio[0]:.2f} [{ratio[1]:.2f}-{ratio[2]:.2f}]")
        results.append({"bench": "python_latency", "peer": label, "p50_ns": med[0], "p99_ns": med[1],
                        "p999_ns": med[2], "ratio_median": ratio[0], "ratio_min": ratio[1], "ratio_max": ratio[2],
                        "rounds": rounds, "messages": n})
    if not iox2:
        print(f"  iceoryx2 skipped: {ICEORYX2}")
        results.append({"bench": "python_latency", "peer": "iceoryx2", "skipped": ICEORYX2})


def bench_producer(rounds, quick, results):
    """The Python producer (cbuf.create / a generated Producer): write_batch of 10 000 rows against np.copyto of
    the same bytes into a preallocated array (the memory-speed floor, target: within 2x); per-row write() of a
    NumPy row, of keyword values, against the Python reader's per-row read_new(out=). 64 B and 1 KiB rows."""
    n = 10_000
    print(f"\n== Python producer, median of {rounds} rounds")
    for row in (64, 1024):
        name = f"/dev/shm/cbuf-bench-producer-{os.getpid()}"
        # A ring of the batch's size, pre-faulted: the producer and np.copyto touch as much memory as each other.
        p = cbuf.create({"name": "bench_producer", "capacity": n, "columns": [
            {"name": "t", "type": "timestamp_ns"}, {"name": "w", "type": f"uint64[{row // 8 - 1}]"}]}, name=name,
            keep=False, prefault=True)
        r = cbuf.open(name, start="end", pace=0)
        try:
            rows = np.zeros(n, dtype=p.dtype)
            rows["t"] = np.arange(n)
            dst = np.empty_like(rows)
            one = rows[:1].copy()
            out = np.empty(1, dtype=r.dtype)
            w = list(range(row // 8 - 1))
            m = {"write_batch": [], "copyto": [], "write(row)": [], "write(t=, w=)": [], "read_new(out=)": []}
            for _ in range(rounds):
                m["write_batch"].append(timeit(lambda: p.write_batch(rows)))
                m["copyto"].append(timeit(lambda: np.copyto(dst.view(np.uint8), rows.view(np.uint8))))
                m["write(row)"].append(timeit(lambda: p.write(one)))
                m["write(t=, w=)"].append(timeit(lambda: p.write(t=1, w=w)))
                r.seek(r.head)

                def write_then_read():
                    p.write(one)
                    r.read_new(out=out)
                m["read_new(out=)"].append(max(timeit(write_then_read) - m["write(row)"][-1], 0.0))
            med = {k: statistics.median(v) for k, v in m.items()}
            print(f"  {row:5} B rows: write_batch of {n} rows {med['write_batch'] * 1e6:8.1f} us, "
                  f"{med['write_batch'] / med['copyto']:5.2f} x np.copyto of the same bytes "
                  f"({med['copyto'] * 1e6:.1f} us; target <= 2)")
            for k in ("write(row)", "write(t=, w=)", "read_new(out=)"):
                print(f"  {row:5} B rows: {k:16} {med[k] * 1e6:7.2f} us per row, "
                      f"{med[k] / med['read_new(out=)']:5.2f} x read_new per row")
            results.append({"bench": "python_producer", "row_bytes": row, "rounds": rounds, "rows": n,
                            **{k: v for k, v in med.items()}, "batch_vs_copyto": med["write_batch"] / med["copyto"]})
        finally:
            r.close()
            p.close()


BRIDGE_KEY = "cbuf-bench/bridge"


def _schema(row):
    return json.dumps({"name": "bridge_bench", "row_size": row,
                       "columns": [{"name": "w", "type": f"uint64[{row // 8}]", "offset": 0}]})


def _paced(rate, step, seconds):
    """Yields the index of each next group of `step` rows for `seconds`, at about `rate` rows/s (0: at once)."""
    t0 = time.monotonic()
    sent = 0
    while time.monotonic() - t0 < seconds:
        if rate and sent > rate * (time.monotonic() - t0):
            time.sleep(0.0002)
            continue
        yield sent
        sent += step


def _bridge_producer(name, row, rate, seconds, ready):
    """Fills buffer `name` with rows (w[0] = the time, w[1] = the index) at about `rate` rows/s, in batches."""
    p = _core.Producer(name, row, 1 << 16, _schema(row), 0, on_close=_core.OnClose.unlink)
    ready.set()
    n = 1 if rate and rate < 10_000 else 4096
    batch = np.zeros((n, row // 8), dtype=np.uint64)
    for sent in _paced(rate, n, seconds):
        batch[:, 0] = time.time_ns()
        batch[:, 1] = np.arange(sent, sent + n)
        p.write_batch(batch)
    time.sleep(0.5)
    p.close()


def _bridge_pub(kind, name, endpoint, row, rate, seconds, ready):
    """kind "cbuf": `cbuf bridge pub` (bridge.Publisher) following `name`. "zenoh": a plain Zenoh publisher
    putting messages of the bridge's size (batch rows, or single rows when rate is low) at `rate` messages."""
    pin(0)
    import zenoh
    from cbuf import bridge
    session = zenoh.open(bridge.zenoh_config(listen=[endpoint]))
    try:
        if kind == "cbuf":
            r = cbuf.Reader(name, start="end", attach_timeout=10)
            pub = bridge.Publisher(r, session, BRIDGE_KEY, block=True)
            ready.set()
            t0 = time.monotonic()
            while time.monotonic() - t0 < seconds + 1:
                pub.step(0.05)
            pub.close()
            return
        pub = session.declare_publisher(BRIDGE_KEY + "/rows", congestion_control=zenoh.CongestionControl.BLOCK)
        per_msg = 1 if rate and rate < 10_000 else (bridge.MESSAGE_BYTES - bridge.HEADER.size) // row
        body = np.zeros((per_msg, row // 8), dtype=np.uint64)
        ready.set()
        time.sleep(1.0)  # the subscriber's declaration arrives
        for sent in _paced(rate, per_msg, seconds):
            body[:, 0] = time.time_ns()
            body[:, 1] = np.arange(sent, sent + per_msg)
            pub.put(bridge.HEADER.pack(bridge.MAGIC, row, 0, 1, 1, 1, sent, 0, per_msg, 0, time.time_ns()) +
                    body.tobytes())
        pub.undeclare()
    finally:
        session.close()


def bridge_run(kind, row, seconds, rate=0):
    """Rows/s delivered and the latencies (ns) of the rows received, by a subscriber in this process."""
    from cbuf import bridge
    ctx = mp.get_context("spawn")  # Zenoh's threads do not survive fork
    port = _free_port()
    endpoint = f"tcp/127.0.0.1:{port}"
    name = f"cbuf-bench-bridge-{uuid.uuid4().hex[:8]}"
    ready_p, ready_pub = ctx.Event(), ctx.Event()
    procs = []
    if kind == "cbuf" or not rate:  # throughput: the same producer in both runs (for Zenoh, a ring nobody reads)
        procs.append(ctx.Process(target=_bridge_producer, args=(name, row, rate or 0, seconds + 3, ready_p)))
        procs[-1].start()
        ready_p.wait(10)
    procs.append(ctx.Process(target=_bridge_pub, args=(kind, name, endpoint, row, rate, seconds + 1, ready_pub)))
    procs[-1].start()
    ready_pub.wait(20)
    pin(1)
    sub = None
    try:
        if kind == "cbuf":
            sub = bridge.subscribe(BRIDGE_KEY, connect=[endpoint], schema_timeout=20)
        else:  # no schema queryable: the same subscriber, given the schema
            sub = bridge.Subscription(BRIDGE_KEY, connect=[endpoint], info={
                "schema": _schema(row), "row_size": row, "fingerprint": 0, "capacity": 1 << 16})
        first = sub.next_batch(timeout=20)
        if first is None:
            raise RuntimeError(f"bridge bench ({kind}): nothing arrived")
        got, lat = 0, []
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            b = sub.next_batch(timeout=0.5)
            if b is None:
                continue
            now = time.time_ns()
            got += len(b.rows)
            if rate and rate < 10_000:
                lat.extend((now - b.rows["w"][:, 0].astype(np.int64)).tolist())
        return got / (time.monotonic() - t0), lat
    finally:
        if sub is not None:
            sub.close()
        for p in procs:
            p.join(timeout=seconds + 10)
            if p.is_alive():
                p.kill()


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_bridge(rounds, quick, results):
    try:
        import zenoh  # noqa: F401
    except ImportError as e:
        print(f"\n== Bridge: skipped ({e}; pip install 'cbuf[zenoh]')")
        results.append({"bench": "bridge", "skipped": str(e)})
        return
    seconds = 1.0 if quick else 2.0
    rounds = min(rounds, 3)
    print("\n== Bridge over Zenoh (tcp/127.0.0.1): rows/s delivered, cbuf bridge vs plain Zenoh moving messages "
          "of the same size in the same run; median [min-max]")
    for row in (64, 1024):
        ours, plain, ratios = [], [], []
        for _ in range(rounds):
            z, _ = bridge_run("zenoh", row, seconds)
            c, _ = bridge_run("cbuf", row, seconds)
            plain.append(z)
            ours.append(c)
            ratios.append(c / z)
        q, o, z = stats(ratios), stats(ours)[0], stats(plain)[0]
        print(f"  {row:5} B  cbuf bridge {o:10.3g} rows/s {o * row / 1e6:7.1f} MB/s   "
              f"plain Zenoh {z:10.3g} rows/s   ratio {q[0]:.2f} [{q[1]:.2f}-{q[2]:.2f}]")
        results.append({"bench": "bridge", "row_bytes": row, "rows_per_s": o, "mb_per_s": o * row / 1e6,
                        "zenoh_rows_per_s": z, "ratio_median": q[0], "ratio_min": q[1], "ratio_max": q[2],
                        "rounds": rounds})
    lat_c = bridge_run("cbuf", 64, seconds, rate=1000)[1]
    lat_z = bridge_run("zenoh", 64, seconds, rate=1000)[1]
    for what, lat in (("cbuf bridge", lat_c), ("plain Zenoh", lat_z)):
        lat.sort()
        p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"  latency, 64 B rows every ms, {what:11}: p50 {p50 / 1e3:7.1f} us  p99 {p99 / 1e3:7.1f} us "
              f"({len(lat)} rows)")
        results.append({"bench": "bridge_latency", "peer": what, "p50_ns": p50, "p99_ns": p99, "rows": len(lat)})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="snapshot,latency,recording,producer,bridge")
    ap.add_argument("--json")
    args = ap.parse_args()
    rounds = 3 if args.quick else args.rounds
    if iox2:
        iox2.set_log_level(iox2.LogLevel.Error)
    results = []
    shm_before = set(os.listdir("/dev/shm"))
    try:
        if "snapshot" in args.only:
            bench_snapshot(rounds, args.quick, results)
        if "latency" in args.only:
            bench_latency(rounds, args.quick, results)
        if "recording" in args.only:
            from bench_recording import bench_recording  # beside this file
            bench_recording(rounds, args.quick, results)
        if "producer" in args.only:
            bench_producer(rounds, args.quick, results)
        if "bridge" in args.only:
            bench_bridge(rounds, args.quick, results)
    finally:
        # iceoryx2 keeps a global management file in /dev/shm after its last node is gone; remove what
        # this run created so that it leaves nothing behind.
        for name in sorted(set(os.listdir("/dev/shm")) - shm_before):
            if name.startswith("iox2_"):
                os.unlink(os.path.join("/dev/shm", name))
    if args.json:
        with open(args.json, "w") as f:
            f.writelines(json.dumps(rec) + "\n" for rec in results)


if __name__ == "__main__":
    main()
