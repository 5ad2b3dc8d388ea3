"""cbuf over Eclipse Zenoh: rows cross machines with their row indices, and every row lost on the way is reported.

    import cbuf.bridge
    with cbuf.bridge.subscribe("lab/daq", connect=["tcp/10.0.0.5:7447"]) as sub:
        for b in sub:                       # Batch(rows, first, lost, lost_range, epoch, restart, sent_ns)
            print(b.first, len(b.rows), b.lost)

The publishing side is `cbuf bridge pub NAME --key KEY` (Publisher below): it follows a local buffer and puts
batches on `KEY/rows`; `KEY/schema` is a queryable that answers with the buffer's schema, so a subscriber needs no
local file. `cbuf bridge sub KEY --name LOCAL` (Relay below) writes arriving rows into a local buffer at their
origin indices, gaps skipped (format 1.1), so local readers see the same indices and the same losses.

A batch message is a 72-byte little-endian header (HEADER) followed by `count` rows of `row_size` bytes:
magic "CBB1", row_size, fingerprint, epoch and created_ns (the source buffer's: together they tell one buffer
from the next), session (the publishing bridge's, random), first (index of the first row), lost (rows the
bridge itself lost just before `first`: [first - lost, first)), count, flags (0), sent_ns (CLOCK_REALTIME when
published). docs/across-machines.md.
"""
import json
import os
import queue
import struct
import time
from typing import Iterator, NamedTuple, Optional, Sequence

import numpy as np

from . import _core
from ._dtype import Column, dtype_from_columns
from .errors import CliError, Error, SchemaMismatchError, require

__all__ = ["subscribe", "Subscription", "Batch", "Publisher", "Relay", "zenoh_config", "HEADER", "MAGIC"]

MAGIC = b"CBB1"
MESSAGE_BYTES = 65000  # the default batch fits one Zenoh batch (at most 65535 bytes)
HEADER = struct.Struct("<4sIQQQQQQIIq")  # 72 bytes: see the module docstring
assert HEADER.size == 72
QUEUE = 256  # batches a subscriber holds before Zenoh's receiving side waits for it (and the link fills)


def _zenoh():
    return require("zenoh", "zenoh", "cbuf bridge")


def zenoh_config(connect: Sequence[str] = (), listen: Sequence[str] = (), mode: str = "peer",
                 config_file: Optional[str] = None):
    """A Zenoh configuration: the given endpoints only. Multicast scouting is off (endpoints are explicit, as
    on the networks this is for), and Zenoh's shared-memory transport is off: cbuf is the shared memory on each
    host, and the bridge exists for the network between them. `config_file`: a Zenoh JSON5 configuration to
    start from (TLS certificates, access control); the settings above are then applied on top of it."""
    zenoh = _zenoh()
    if config_file:
        try:
            c = zenoh.Config.from_file(config_file)
        except Exception as e:  # zenoh.ZError: unreadable or invalid
            raise CliError(f"{config_file}: not a usable Zenoh configuration: {e}") from None
    else:
        c = zenoh.Config()
    c.insert_json5("mode", json.dumps(mode))
    c.insert_json5("scouting/multicast/enabled", "false")
    c.insert_json5("transport/shared_memory/enabled", "false")
    # Room for bursts before the drop policy drops: the largest data queue Zenoh allows (16 batches of 64 KiB).
    c.insert_json5("transport/link/tx/queue/size/data", "16")
    if connect or not config_file:
        c.insert_json5("connect/endpoints", json.dumps(list(connect)))
    if listen or not config_file:
        c.insert_json5("listen/endpoints", json.dumps(list(listen)))
    return c


def _open_session(connect, listen, mode="peer", config_file=None):
    zenoh = _zenoh()
    config = zenoh_config(connect, listen, mode, config_file)
    try:
        return zenoh.open(config)
    except Exception as e:  # zenoh.ZError: a bad endpoint, a port in use
        raise CliError(f"cannot open a Zenoh session (connect {list(connect)}, listen {list(listen)}): {e}") from None


def _check_key(key: str) -> str:
    if not key or key.startswith("/") or key.endswith("/") or any(c in key for c in "*$?#"):
        raise CliError(f"bad key {key!r}: a Zenoh key like 'lab/daq' (no wildcards, no leading or trailing '/')")
    return key


# --- the publishing side -------------------------------------------------------------------------------------
class Publisher:
    """Follows a local buffer (a cbuf.Reader that follows restarts) and publishes its rows in batches of up to
    `batch` rows: what is there when it looks, or, with `max_delay` > 0, what comes within that many seconds.
    Drops under congestion by default (the source side never waits, like the ring), or blocks (block=True)."""

    def __init__(self, reader, session, key: str, batch: Optional[int] = None, max_delay: float = 0.0,
                 block: bool = False):
        zenoh = _zenoh()
        self.r, self.key = reader, _check_key(key)
        # Default: as many rows as fit one 64 KiB Zenoh batch (larger messages are sent in fragments).
        self.batch = batch or max(1, min(1024, (MESSAGE_BYTES - HEADER.size) // reader.row_size))
        self.max_delay = max_delay
        self.session_id = int.from_bytes(os.urandom(8), "little") or 1
        cc = zenoh.CongestionControl.BLOCK if block else zenoh.CongestionControl.DROP
        self._pub = session.declare_publisher(f"{key}/rows", congestion_control=cc)
        self._queryable = session.declare_queryable(f"{key}/schema", self._answer_schema)
        self._created = reader.header["created_ns"]
        self.sent = self.batches = self.lost = 0

    def describe(self) -> bytes:
        """The schema reply: what a subscriber needs to build the rows' dtype and a local buffer."""
        r = self.r
        return json.dumps({"format": list(_core.FORMAT_VERSION), "schema": r._b.schema_json,
                           "fingerprint": r.fingerprint, "row_size": r.row_size, "capacity": r.capacity,
                           "epoch": r.epoch, "session": self.session_id, "name": r.schema_name}).encode()

    def _answer_schema(self, query) -> None:
        try:
            query.reply(f"{self.key}/schema", self.describe())
        except Exception:  # the reader is between epochs, or the session is closing: the subscriber asks again
            pass

    def _buffers(self) -> None:
        """The message buffer (header, then up to `batch` rows) that rows are read straight into."""
        self._dtype = self.r.dtype
        self._msg = bytearray(HEADER.size + self.batch * self.r.row_size)
        self._out = np.frombuffer(self._msg, dtype=self._dtype, count=self.batch, offset=HEADER.size)

    def step(self, timeout: float = 0.1) -> bool:
        """Reads what is there (waiting up to `timeout` for a first row, then up to max_delay to fill a batch)
        and publishes it. Returns False when nothing came."""
        r = self.r
        if getattr(self, "_dtype", None) != r.dtype:
            self._buffers()
        res = r.read_new(out=self._out)
        if not len(res.rows) and not res.lost and not res.restart:
            r.wait(timeout)
            res = r.read_new(out=self._out)
        if res.restart:  # the next batch carries the new buffer's epoch and starts at its base index
            self._created = r.header["created_ns"]
            return True
        if not len(res.rows) and not res.lost:
            return False
        first, lost, count = res.first, res.lost, len(res.rows)
        deadline = time.monotonic() + self.max_delay if self.max_delay > 0 else 0.0
        while count < self.batch and deadline and time.monotonic() < deadline:
            more = r.read_new(out=self._out[count:])
            if more.restart or more.lost:  # each batch carries one lost range: this one ends here
                self._send(first, lost, count)
                if more.restart:
                    self._created = r.header["created_ns"]
                    return True
                self._out[:len(more.rows)] = more.rows
                first, lost, count = more.first, more.lost, len(more.rows)
            elif len(more.rows):
                count += len(more.rows)
            else:
                r.wait(max(0.0, deadline - time.monotonic()))
        self._send(first, lost, count)
        return True

    def _send(self, first: int, lost: int, count: int) -> None:
        r = self.r
        HEADER.pack_into(self._msg, 0, MAGIC, r.row_size, r.fingerprint, r.epoch, self._created, self.session_id,
                         first, lost, count, 0, time.time_ns())
        size = HEADER.size + count * r.row_size
        self._pub.put(self._msg if size == len(self._msg) else bytes(memoryview(self._msg)[:size]))
        self.sent += count
        self.lost += lost
        self.batches += 1

    def close(self) -> None:
        for x in (self._queryable, self._pub):
            try:
                x.undeclare()
            except Exception:
                pass


# --- the subscribing side ------------------------------------------------------------------------------------
class Restart(NamedTuple):
    """The source buffer's producer restarted (a new epoch), or the subscription started over on it."""
    old_epoch: int
    new_epoch: int


class Batch(NamedTuple):
    """Rows [first, first + len(rows)) as the source numbered them; `lost` rows, indices `lost_range`, just
    before them were lost on the way (the source lapped the bridge, the network dropped a batch, a bridge
    restarted). `restart`: set on the first batch of a new source epoch. `sent_ns`: when it was published."""
    rows: np.ndarray
    first: int
    lost: int
    lost_range: range
    epoch: int
    restart: Optional[Restart]
    sent_ns: int


class Subscription:
    """Batches from `KEY/rows`, checked against the schema served on `KEY/schema`. Iterate it (it ends on
    close()), or call next_batch(timeout). A subscriber that joins late starts at the newest batch."""

    def __init__(self, key: str, connect: Sequence[str] = (), listen: Sequence[str] = (), schema_timeout: float = 10.0,
                 session=None, mode: str = "peer", info: Optional[dict] = None, config_file: Optional[str] = None):
        self.key = _check_key(key)
        self._own = session is None
        self.session = _open_session(connect, listen, mode, config_file) if session is None else session
        try:
            # Batches wait in a bounded queue: a subscriber that falls behind makes Zenoh's receiving side wait,
            # the link fills, and the publisher drops (never waits, by default) - losses the indices then show.
            self._queue: "queue.Queue[bytes]" = queue.Queue(QUEUE)
            self._sub = self.session.declare_subscriber(f"{key}/rows",
                                                        lambda sample: self._queue.put(sample.payload.to_bytes()))
            # `info`: the schema reply (Publisher.describe()) when it is known already; else asked for.
            self.info = info if info is not None else self._query_schema(schema_timeout)
        except BaseException:
            self.close()
            raise
        self._use(self.info)
        self.epoch: Optional[int] = None
        self.source: Optional[tuple] = None  # (epoch, created_ns) of the source buffer
        self.ignored = 0  # messages that were not valid batches
        self.expected: Optional[int] = None  # the next index, once the first batch came
        self.received = self.lost = self.lost_network = self.lost_source = 0

    def _query_schema(self, timeout: float) -> dict:
        """Asks KEY/schema until a publisher answers (or `timeout` seconds pass)."""
        deadline = time.monotonic() + timeout
        while True:
            for reply in self.session.get(f"{self.key}/schema", timeout=min(1.0, max(0.1, timeout))):
                if reply.ok is None:
                    continue
                try:
                    info = json.loads(reply.ok.payload.to_bytes())
                    if info["format"][0] == _core.FORMAT_VERSION[0]:
                        return info
                except (ValueError, KeyError, TypeError, IndexError):
                    continue
            if time.monotonic() >= deadline:
                raise CliError(f"no cbuf bridge publisher answered on {self.key}/schema within {timeout:g} s (is "
                               f"`cbuf bridge pub ... --key {self.key}` running, and are the endpoints right?)")
            time.sleep(0.1)

    def _use(self, info: dict) -> None:
        """Adopts a schema reply: the row dtype, checked by the runtime like any buffer's schema."""
        where = f"{self.key}/schema"
        schema_json, columns = _core.check_schema(info["schema"], info["row_size"], where)
        self.info = info
        self._core_columns = [tuple(c) for c in columns]  # as the runtime gives them, for column_changes
        self.columns = tuple(Column(*c) for c in columns)
        self.row_size, self.fingerprint = int(info["row_size"]), int(info["fingerprint"])
        self.dtype = dtype_from_columns(self.columns, self.row_size)
        self.schema = json.loads(schema_json)

    def _served(self) -> Optional[dict]:
        """What the publisher serves on KEY/schema now, or None if it does not answer."""
        try:
            return self._query_schema(5.0)
        except CliError:
            return None

    def _refuse_change(self, info: dict, fingerprint: int, row_size: int) -> None:
        """Batches of another schema, the one the publisher serves now (a new source epoch): refused, naming the
        columns that differ."""
        _, new_columns = _core.check_schema(info["schema"], info["row_size"], f"{self.key}/schema")
        changes = _core.column_changes(self._core_columns, [tuple(c) for c in new_columns])
        raise SchemaMismatchError(
            f"{self.key}: the source's schema changed (fingerprint 0x{self.fingerprint:016x} -> 0x{fingerprint:016x}"
            f"): {changes or f'rows of {self.row_size} -> {row_size} bytes'}; start the subscriber again to take the "
            "new schema", "schema_mismatch", self.key)

    def next_batch(self, timeout: Optional[float] = None) -> Optional[Batch]:
        """The next batch, or None when `timeout` seconds pass first (None: wait until one comes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            try:  # wakes for Ctrl-C at least every 0.5 s
                msg = self._queue.get(timeout=0.5 if left is None else min(left, 0.5))
            except queue.Empty:
                continue
            b = self._decode(msg)
            if b is not None:
                return b

    def _decode(self, msg: bytes) -> Optional[Batch]:
        """A batch from a message, or None for a message to ignore: not a batch, rows already received. Network
        input is checked like shared memory: sizes against the length, indices against 2^63."""
        if len(msg) < HEADER.size:
            self.ignored += 1
            return None
        (magic, row_size, fingerprint, epoch, created, _session, first, lost, count, _flags,
         sent) = HEADER.unpack_from(msg)
        if (magic != MAGIC or row_size == 0 or len(msg) != HEADER.size + count * row_size
                or first + count >= 1 << 63 or lost > first):
            self.ignored += 1
            return None
        if fingerprint != self.fingerprint or row_size != self.row_size:
            served = self._served()
            if served is None or int(served["fingerprint"]) != fingerprint:
                self.ignored += 1  # not what the publisher serves: a stray or forged message
                return None
            self._refuse_change(served, fingerprint, row_size)
        restart = None
        if self.source is not None and (epoch, created) != self.source:
            restart = Restart(self.epoch, epoch)
            self.expected = None  # a new buffer: its indices start over at its base
        self.source = (epoch, created)
        self.epoch = epoch
        rows = np.frombuffer(msg, dtype=self.dtype, count=count, offset=HEADER.size)
        if self.expected is None:  # the first batch (of an epoch): counted from here, nothing lost before it
            self.expected = first
        if first + count <= self.expected and restart is None:
            return None  # a batch already received (a restarted bridge resending rows): dropped
        if first < self.expected:
            rows = rows[self.expected - first:]
            first = self.expected
            lost = 0
        gap = first - self.expected
        source = min(lost, gap)
        self.lost += gap
        self.lost_source += source
        self.lost_network += gap - source
        self.received += len(rows)
        lost_range = range(self.expected, first)
        self.expected = first + len(rows)
        return Batch(rows, first, gap, lost_range, epoch, restart, sent)

    def __iter__(self) -> Iterator[Batch]:
        while True:
            b = self.next_batch(0.1)
            if b is not None:
                yield b

    def close(self) -> None:
        try:
            self._sub.undeclare()
        except Exception:
            pass
        if self._own:
            try:
                self.session.close()
            except Exception:
                pass

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def subscribe(key: str, connect: Sequence[str] = (), listen: Sequence[str] = (), schema_timeout: float = 10.0,
              mode: str = "peer", config_file: Optional[str] = None) -> Subscription:
    """Batches of a buffer published by `cbuf bridge pub ... --key KEY`, straight from the network (no local
    buffer): Batch(rows, first, lost, lost_range, epoch, restart, sent_ns). connect/listen: Zenoh endpoints
    such as "tcp/10.0.0.5:7447". Raises cbuf.errors.CliError if no publisher answers within schema_timeout."""
    return Subscription(key, connect, listen, schema_timeout, mode=mode, config_file=config_file)


class Relay:
    """Writes a subscription's rows into a local buffer at their origin indices: the local buffer starts at the
    first index received, gaps become skipped rows (lost to every local reader), and a new source epoch makes a
    new local buffer of the same name (local readers that follow restarts move to it)."""

    def __init__(self, sub: Subscription, name: str, dir: str = "", capacity: Optional[int] = None):
        self.sub, self.name, self.dir, self.capacity = sub, name, dir, capacity
        self.p = None

    def _create(self, first: int) -> None:
        # The old buffer is closed but kept, so that the new one replaces it with the next epoch (local readers
        # that follow restarts finish the old one, then move); the last one is removed by close().
        if self.p is not None:
            self.p.close()
        info = self.sub.info
        cap = self.capacity or int(info.get("capacity") or 1 << 16)
        self.p = _core.Producer(self.name, self.sub.row_size, cap, info["schema"], self.sub.fingerprint, self.dir,
                                keep=True, replace=True, base_index=first)
        st = os.stat(self.p.path)
        self._file = (self.p.path, st.st_dev, st.st_ino)

    @property
    def path(self) -> Optional[str]:
        return None if self.p is None else self.p.path

    def write(self, b: Batch) -> None:
        if self.p is None or b.restart is not None:
            self._create(b.first - b.lost if self.p is None else b.first)
        if b.lost:
            self.p.skip(b.lost)
        if len(b.rows):
            self.p.write(np.ascontiguousarray(b.rows))

    def close(self) -> None:
        """Closes the local buffer and removes it (if it is still this relay's file): no debris is left."""
        if self.p is not None:
            self.p.close()
            _core.unlink_if_unheld(*self._file)
            self.p = None
