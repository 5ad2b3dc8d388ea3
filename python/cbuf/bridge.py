"""cbuf over Eclipse Zenoh: rows cross machines with their row indices, and every row lost on the way is reported.

    import cbuf.bridge
    with cbuf.bridge.subscribe("lab/daq", connect=["tcp/10.0.0.5:7447"]) as sub:
        for b in sub:                       # Batch(rows, first, lost, lost_range, epoch, restart, sent_ns, ended)
            print(b.first, len(b.rows), b.lost)

The publishing side is `cbuf bridge pub NAME --key KEY` (Publisher below): it follows a local buffer and puts
batches on `KEY/rows`; `KEY/schema` is a queryable that answers with the buffer's schema, so a subscriber needs no
local file. `cbuf bridge sub KEY --name LOCAL` (Relay below) writes arriving rows into a local buffer at their
origin indices, gaps skipped (format 1.1), so local readers see the same indices and the same losses.

A batch message is an 80-byte little-endian header (HEADER) followed by `count` rows of `row_size` bytes:
magic "CBB2", row_size, fingerprint, epoch and created_ns (the source buffer's: together they tell one buffer
from the next), session (the publishing bridge's, random), first (index of the first row), lost (rows the
bridge itself lost just before `first`: [first - lost, first)), count, flags (0, or for a message with no rows
that says the source buffer ended at `first`: CLOSED when its producer closed it, DEAD when it died), sent_ns
(CLOCK_REALTIME when published), seq (the publishing session's message number: 1, 2, 3, ...).
docs/across-machines.md.

Trust (docs/across-machines.md, "Who the subscriber follows"): a subscriber follows one publisher, pinned when
it takes the schema - the publisher's session (in the reply and in every batch) and the Zenoh id of the
session that replied. Batches of other sessions are ignored while the pinned one is heard; an epoch or schema
change is believed only when the pinned publisher's own schema reply confirms it; a batch that moves the index
ahead and is then contradicted by the pinned session's next batches (which can only happen if it was forged)
makes the subscription start over at the real position. Where forging must be impossible, Zenoh's mutual TLS
and access control keep other peers off the key.
"""
import json
import os
import queue
import struct
import threading
import time
from typing import Iterator, NamedTuple, Optional, Sequence

import numpy as np

from . import _core
from ._dtype import LayoutColumn, dtype_from_columns
from .errors import Error, SchemaMismatchError, require

__all__ = ["subscribe", "published", "Subscription", "Batch", "Publisher", "Relay", "BridgeError", "Stopped",
           "zenoh_config",
           "open_session", "check_zenoh", "parse_reply", "HEADER", "MAGIC", "MAX_REMOTE_CAPACITY", "LIVELINESS"]

MAGIC = b"CBB2"
MESSAGE_BYTES = 65000  # the default batch fits one Zenoh batch (at most 65535 bytes)
HEADER = struct.Struct("<4sIQQQQQQIIqQ")  # 80 bytes: see the module docstring
assert HEADER.size == 80
QUEUE = 256  # batches a subscriber holds before Zenoh's receiving side waits for it (and the link fills)
CLOSED, DEAD = 1, 2  # HEADER flags: the source buffer ended (module docstring)
END_EVERY = 1.0  # seconds between two repeats of the end message while the source stays ended (a drop is healed)
LIVELINESS = "cbuf_bridge"  # each publisher holds the Zenoh liveliness token LIVELINESS/KEY while it runs
MAX_REMOTE_CAPACITY = 1 << 24  # rows a publisher's reply may make a relay keep; --capacity sets any size
AGREE = 16  # batches that continue a jump one after the other before the jump is no longer doubted
CONFIRM_EVERY = 0.5  # seconds between two schema queries that check a change or another publisher


class BridgeError(Error):
    """The bridge cannot go on: no publisher answers, the source's schema changed, a bad key or reply."""


def _zenoh():
    return require("zenoh", "zenoh", "cbuf bridge")


def check_zenoh() -> None:
    """Raises an error of one line naming the extra to install if the zenoh package is missing."""
    _zenoh()


class Stopped(Error):
    """A subscription's `stop` event was set while it waited for a publisher to answer: not a failure, but the
    call did not complete (a cbuf.Error like every exception the package raises)."""


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
            raise BridgeError(f"{config_file}: not a usable Zenoh configuration: {e}") from None
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


def open_session(connect: Sequence[str] = (), listen: Sequence[str] = (), mode: str = "peer",
                 config_file: Optional[str] = None):
    """A Zenoh session with zenoh_config()'s settings; BridgeError (one line) if Zenoh cannot open it."""
    zenoh = _zenoh()
    config = zenoh_config(connect, listen, mode, config_file)
    try:
        return zenoh.open(config)
    except Exception as e:  # zenoh.ZError: a bad endpoint, a port in use
        raise BridgeError(f"cannot open a Zenoh session (connect {list(connect)}, listen {list(listen)}): {e}") \
            from None


def _check_key(key: str) -> str:
    if not key or key.startswith("/") or key.endswith("/") or any(c in key for c in "*$?#"):
        raise BridgeError(f"bad key {key!r}: a Zenoh key like 'lab/daq' (no wildcards, no leading or trailing '/')")
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
        self._token = session.liveliness().declare_token(f"{LIVELINESS}/{key}")  # what `cbuf bridge ls` lists
        self._created = reader.header["created_ns"]
        self.sent = self.batches = self.lost = 0
        self._ended = 0.0  # when the end of the source buffer was last announced (0: not yet)

    def describe(self) -> bytes:
        """The schema reply: what a subscriber needs to build the rows' dtype and a local buffer, and the
        identity (session, source epoch and creation time) that its batches carry."""
        r = self.r
        return json.dumps({"format": list(_core.FORMAT_VERSION), "schema": r.schema_json,
                           "fingerprint": r.fingerprint, "row_size": r.row_size, "capacity": r.capacity,
                           "epoch": r.epoch, "created_ns": self._created, "base_index": r.base_index,
                           "session": self.session_id, "name": r.schema_name}).encode()

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
            self._ended = 0.0
            return True
        if not len(res.rows) and not res.lost:
            if r.drained and time.monotonic() - self._ended >= END_EVERY:  # closed or dead, every row sent
                self._ended = time.monotonic()
                self._send(r.cursor, 0, 0, CLOSED if r.state == "closed" else DEAD)
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

    def _send(self, first: int, lost: int, count: int, flags: int = 0) -> None:
        r = self.r
        HEADER.pack_into(self._msg, 0, MAGIC, r.row_size, r.fingerprint, r.epoch, self._created, self.session_id,
                         first, lost, count, flags, time.time_ns(), self.batches + 1)
        size = HEADER.size + count * r.row_size
        self._pub.put(self._msg if size == len(self._msg) else bytes(memoryview(self._msg)[:size]))
        self.sent += count
        self.lost += lost
        self.batches += 1

    def close(self) -> None:
        for x in (self._token, self._queryable, self._pub):
            try:
                x.undeclare()
            except Exception:
                pass


# --- the subscribing side ------------------------------------------------------------------------------------
class SourceRestart(NamedTuple):
    """The source buffer's producer restarted (a new epoch), or the subscription started over on it."""
    old_epoch: int
    new_epoch: int


class Batch(NamedTuple):
    """Rows [first, first + len(rows)) as the source numbered them; `lost` rows, indices `lost_range`, just
    before them were lost on the way (the source lapped the bridge, the network dropped a batch, a bridge
    restarted). `restart`: set on the first batch of a new source epoch. `sent_ns`: when it was published.
    `ended`: "closed" or "dead" on the batch (with no rows) that says the source buffer ended at `first` -
    its producer closed it, or died; iterating a subscription stops after it."""
    rows: np.ndarray
    first: int
    lost: int
    lost_range: range
    epoch: int
    restart: Optional[SourceRestart]
    sent_ns: int
    ended: Optional[str] = None


def parse_reply(payload: bytes) -> dict:
    """A schema reply (Publisher.describe()), checked field by field like a buffer header: ValueError saying
    what is wrong. The schema itself is checked by the runtime."""
    try:
        info = json.loads(payload)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if not isinstance(info, dict):
        raise ValueError("not a JSON object")

    def integer(name: str, lo: int, hi: int) -> int:
        v = info.get(name)
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise ValueError(f"{name!r} is {v!r}, not an integer in [{lo}, {hi}]")
        return v
    fmt = info.get("format")
    if not (isinstance(fmt, list) and len(fmt) == 2 and all(isinstance(x, int) for x in fmt)):
        raise ValueError(f"'format' is {fmt!r}, not [major, minor]")
    if fmt[0] != _core.FORMAT_VERSION[0]:
        raise ValueError(f"format {fmt[0]}.{fmt[1]}, this subscriber reads {_core.FORMAT_VERSION[0]}.x")
    if not isinstance(info.get("schema"), str):
        raise ValueError("'schema' is not a string of schema JSON")
    integer("row_size", 1, _core.MAX_ROW_SIZE)
    integer("fingerprint", 0, 2**64 - 1)
    integer("capacity", 1, _core.MAX_CAPACITY)
    integer("epoch", 0, 2**64 - 1)
    integer("created_ns", 0, 2**64 - 1)
    integer("base_index", 0, _core.INDEX_LIMIT)
    integer("session", 1, 2**64 - 1)
    try:
        _core.check_schema(info["schema"], info["row_size"], "schema reply")
    except Error as e:
        raise ValueError(str(e).removeprefix("cbuf: ")) from None
    return info


class _Counts(NamedTuple):
    """What a subscription has counted, kept before an index jump so that a forged one can be taken back."""
    seq: int
    expected: Optional[int]
    received: int
    lost: int
    lost_network: int
    lost_source: int


class Subscription:
    """Batches from `KEY/rows`, checked against the schema served on `KEY/schema`. Iterate it (it ends on
    close()), or call next_batch(timeout). A subscriber that joins late starts at the newest batch. It follows
    the publisher that answered its schema query (module docstring, "Trust")."""

    def __init__(self, key: str, connect: Sequence[str] = (), listen: Sequence[str] = (), schema_timeout: float = 10.0,
                 session=None, mode: str = "peer", info: Optional[dict] = None, config_file: Optional[str] = None,
                 stop: Optional[threading.Event] = None):
        self.key = _check_key(key)
        self._own = session is None
        self._sub = None
        self._stop = stop or threading.Event()  # set: the schema query gives up (Stopped), iteration ends
        self._closing = False
        self._querying = False  # the main thread waits for a schema reply (_on_sample)
        self.session = open_session(connect, listen, mode, config_file) if session is None else session
        self.epoch: Optional[int] = None
        self.source: Optional[tuple] = None  # (epoch, created_ns) of the source buffer
        self.ignored = 0  # messages that were not valid batches
        self.foreign = 0  # valid batches of a publisher this subscription does not follow
        self.malformed = 0  # schema replies that were not valid
        self.expected: Optional[int] = None  # the next index, once the first batch came
        self.received = self.lost = self.lost_network = self.lost_source = 0
        self.start_overs = 0  # forged index jumps taken back
        self._since_ns = time.time_ns()  # when this subscriber began waiting: rows produced since count
        self.ended: Optional[str] = None  # "closed" or "dead" once the source buffer ended (until it restarts)
        self._seq = 0  # the pinned session's last message number
        self._asked = 0.0  # when a schema query last checked an unconfirmed change
        self._before_jump: Optional[_Counts] = None
        self._agree = 0
        try:
            # Batches wait in a bounded queue: a subscriber that falls behind makes Zenoh's receiving side wait,
            # the link fills, and the publisher drops (never waits, by default) - losses the indices then show.
            self._queue: "queue.Queue[bytes]" = queue.Queue(QUEUE)
            self._sub = self.session.declare_subscriber(f"{key}/rows", self._on_sample)
            # `info`: the schema reply (Publisher.describe()) when it is known already; else asked for.
            if info is not None:
                self._pin(parse_reply(json.dumps(info).encode()), None)
            else:
                self._pin(*self._query_schema(schema_timeout))
        except BaseException:
            self.close()
            raise

    def _on_sample(self, sample) -> None:
        """Zenoh's callback (its own thread): queues the message, waiting while the queue is full - but never
        past close(), which would otherwise wait for this callback while it waits for room."""
        data = sample.payload.to_bytes()
        while not self._closing:
            try:
                self._queue.put(data, timeout=0.1)
                return
            except queue.Full:
                if self._querying:  # Zenoh delivers the reply the main thread waits for on this thread: the
                    return          # batch is dropped (a gap, counted lost) rather than both waiting

    def _replies(self, timeout: float):
        """(info, replier id) of each valid reply on KEY/schema within `timeout`; invalid ones are counted."""
        self._querying = True
        try:
            replies = list(self.session.get(f"{self.key}/schema", timeout=timeout))
        finally:
            self._querying = False
        for reply in replies:
            if reply.ok is None:
                continue
            try:
                info = parse_reply(reply.ok.payload.to_bytes())
            except (ValueError, UnicodeDecodeError) as e:
                self.malformed += 1
                self._malformed_why = str(e)
                continue
            yield info, str(getattr(reply, "replier_id", "") or "")

    def _query_schema(self, timeout: float, session: Optional[int] = None, replier: Optional[str] = None):
        """(info, replier) of the first valid reply (of that publisher session / Zenoh id, if given), asking
        again until `timeout` seconds pass: then BridgeError."""
        deadline = time.monotonic() + timeout
        while True:
            if self._stop.is_set():
                raise Stopped(f"{self.key}: stopped while waiting for a publisher's schema", "stopped")
            for info, rid in self._replies(min(0.5, max(0.1, timeout))):
                if (session is None or info["session"] == session) and (not replier or not rid or rid == replier):
                    return info, rid
            if time.monotonic() >= deadline:
                bad = (f"; {self.malformed} replies were not valid ({self._malformed_why})"
                       if self.malformed else "")
                raise BridgeError(f"no cbuf bridge publisher answered on {self.key}/schema within {timeout:g} s (is "
                                  f"`cbuf bridge pub ... --key {self.key}` running, and are the endpoints right?)"
                                  + bad)
            time.sleep(0.1)

    def _pin(self, info: dict, replier: Optional[str]) -> None:
        """Follows the publisher of this reply: its schema (checked by the runtime like any buffer's) and its
        identity."""
        schema_json, columns = _core.check_schema(info["schema"], info["row_size"], f"{self.key}/schema")
        self.info = info
        self.replier = replier
        self.session_id = info["session"]
        self._seq = 0
        self._core_columns = [tuple(c) for c in columns]  # as the runtime gives them, for column_changes
        self.columns = tuple(LayoutColumn(*c) for c in columns)
        self.row_size, self.fingerprint = int(info["row_size"]), int(info["fingerprint"])
        self.dtype = dtype_from_columns(self.columns, self.row_size)
        self.schema = json.loads(schema_json)

    def _may_ask(self) -> bool:
        """At most one schema query per CONFIRM_EVERY seconds: a stream of forged messages cannot keep the
        subscriber asking instead of reading."""
        now = time.monotonic()
        if now - self._asked < CONFIRM_EVERY:
            return False
        self._asked = now
        return True

    def _served(self) -> Optional[dict]:
        """What the pinned publisher serves on KEY/schema now, or None if it does not answer (or was asked
        too recently)."""
        if not self._may_ask():
            return None
        try:
            return self._query_schema(1.0, self.session_id, self.replier)[0]
        except BridgeError:
            return None

    def _successor(self, session: int) -> Optional[tuple]:
        """(info, replier) of publisher session `session` if it answers on KEY/schema and the pinned publisher
        no longer does (a restarted publishing bridge); else None."""
        if not self._may_ask():
            return None
        replies = list(self._replies(0.5))
        if any(info["session"] == self.session_id for info, _ in replies):
            return None  # the publisher followed is alive: the other one is not followed
        return next(((info, rid) for info, rid in replies if info["session"] == session), None)

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
        while not self._stop.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            try:  # wakes for the stop event at least every 0.1 s
                msg = self._queue.get(timeout=0.1 if left is None else min(left, 0.1))
            except queue.Empty:
                continue
            b = self._decode(msg)
            if b is not None:
                return b
        return None

    def _counts(self) -> _Counts:
        return _Counts(self._seq, self.expected, self.received, self.lost, self.lost_network, self.lost_source)

    def _decode(self, msg: bytes) -> Optional[Batch]:
        """A batch from a message, or None for a message to ignore: not a batch, not of the followed
        publisher, rows already received. Network input is checked like shared memory: sizes against the
        length, indices against the format's index limit, identities against the pinned publisher's."""
        if len(msg) < HEADER.size:
            self.ignored += 1
            return None
        (magic, row_size, fingerprint, epoch, created, session, first, lost, count, flags, sent,
         seq) = HEADER.unpack_from(msg)
        if (magic != MAGIC or row_size == 0 or len(msg) != HEADER.size + count * row_size
                or first + count > _core.INDEX_LIMIT or lost > first or seq == 0
                or flags not in (0, CLOSED, DEAD) or (flags and count)):
            self.ignored += 1
            return None
        if session != self.session_id:
            # Another publisher: followed only if it answers schema queries itself and the pinned one no longer
            # does (a restarted publishing bridge: the source's indices continue).
            other = self._successor(session)
            if other is None or other[0]["fingerprint"] != self.fingerprint or other[0]["row_size"] != self.row_size:
                self.foreign += 1
                return None
            self._pin(*other)
        if fingerprint != self.fingerprint or row_size != self.row_size or (
                self.source is not None and (epoch, created) != self.source) or (
                self.source is None and (epoch, created) != (self.info["epoch"], self.info["created_ns"])):
            # A new source epoch or schema: believed only when the pinned publisher's own reply says so.
            served = self._served()
            if served is None or (served["epoch"], served["created_ns"], served["fingerprint"],
                                  served["row_size"]) != (epoch, created, fingerprint, row_size):
                self.ignored += 1
                return None
            if fingerprint != self.fingerprint or row_size != self.row_size:
                self._refuse_change(served, fingerprint, row_size)
            self.info = served
        restart = None
        if self.source is not None and (epoch, created) != self.source:
            restart = SourceRestart(self.epoch, epoch)
            self.expected = None  # a new buffer: its indices start over at its base
            self._before_jump = None
        elif self.expected is not None:
            if seq <= self._seq or (first + count <= self.expected if count else first < self.expected):
                # Behind the stream: a message seen already (replayed), a restarted bridge resending rows - or
                # the pinned session going on from where it was before its last jump, which only a forged
                # message can have made: that jump is taken back, and the subscription starts over here (local
                # readers see a restart; nothing is stalled).
                b = self._before_jump
                if b is None or seq <= b.seq or first - lost < b.expected:
                    self.ignored += 1
                    return None
                (_, self.expected, self.received, self.lost, self.lost_network, self.lost_source) = b
                self._before_jump = None
                self.start_overs += 1
                restart = SourceRestart(epoch, epoch)
            elif seq == self._seq + 1 and first - lost == self.expected:
                self._agree += 1  # continues the stream: after AGREE of these, a jump before is not doubted
                if self._agree >= AGREE:
                    self._before_jump = None
            elif self._before_jump is None:
                self._before_jump = self._counts()  # ahead: lost on the way (or forged, to be seen)
                self._agree = 0
        self.source = (epoch, created)
        self.epoch = epoch
        self._seq = seq
        rows = np.frombuffer(msg, dtype=self.dtype, count=count, offset=HEADER.size)
        if self.expected is None:  # the first batch of a source buffer
            # Made after this subscriber began waiting: every row it holds counts, from its first (base) index -
            # rows before this batch are lost. Made before: the subscriber joined late; it counts from here.
            base = self.info["base_index"] if (self.info["epoch"], self.info["created_ns"]) == (epoch, created) \
                else first
            self.expected = min(base, first) if created >= self._since_ns else first
        if flags and first == self.expected and self.ended:  # the end, repeated: nothing new
            return None
        if first < self.expected:  # partly received already (a restarted bridge resending rows)
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
        self.ended = {CLOSED: "closed", DEAD: "dead"}.get(flags)
        return Batch(rows, first, gap, lost_range, epoch, restart, sent, self.ended)

    def __iter__(self) -> Iterator[Batch]:
        """Batches as they come, until the source buffer ends (its producer closed it or died: the last batch
        says so in `ended`), the stop event is set, or close() is called. next_batch() goes on across a
        source restart instead."""
        while not self._stop.is_set() and not self._closing:
            b = self.next_batch(0.1)
            if b is not None:
                yield b
                if b.ended:
                    return

    def close(self) -> None:
        self._closing = True
        if self._sub is not None:
            try:
                self._sub.undeclare()
            except Exception:
                pass
            self._sub = None
        if self._own and self.session is not None:
            try:
                self.session.close()
            except Exception:
                pass
            self.session = None

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def subscribe(key: str, connect: Sequence[str] = (), listen: Sequence[str] = (), schema_timeout: float = 10.0,
              mode: str = "peer", config_file: Optional[str] = None,
              stop: Optional[threading.Event] = None) -> Subscription:
    """Batches of a buffer published by `cbuf bridge pub ... --key KEY`, straight from the network (no local
    buffer): Batch(rows, first, lost, lost_range, epoch, restart, sent_ns). connect/listen: Zenoh endpoints
    such as "tcp/10.0.0.5:7447". Raises BridgeError if no publisher answers within schema_timeout."""
    return Subscription(key, connect, listen, schema_timeout, mode=mode, config_file=config_file, stop=stop)


def published(session, timeout: float = 2.0) -> list:
    """The keys that `cbuf bridge pub` processes publish on the network the session reaches, each with what
    its publisher serves on KEY/schema (None if it did not answer validly): [(key, info), ...], sorted."""
    keys = set()
    for reply in session.liveliness().get(f"{LIVELINESS}/**", timeout=timeout):
        if reply.ok is not None:
            keys.add(str(reply.ok.key_expr).removeprefix(f"{LIVELINESS}/"))
    out = []
    for key in sorted(keys):
        info = None
        for reply in session.get(f"{key}/schema", timeout=timeout):
            if reply.ok is not None:
                try:
                    info = parse_reply(reply.ok.payload.to_bytes())
                    break
                except (ValueError, UnicodeDecodeError):
                    continue
        out.append((key, info))
    return out


class Relay:
    """Writes a subscription's rows into a local buffer at their origin indices: the local buffer starts at the
    first index received, gaps become skipped rows (lost to every local reader), and a new source epoch (or a
    subscription that starts over) makes a new local buffer of the same name (local readers that follow
    restarts move to it). Its capacity: `capacity`, else the source's, which may not exceed
    MAX_REMOTE_CAPACITY (a reply from the network does not decide alone how much memory this host reserves)."""

    def __init__(self, sub: Subscription, name: str, dir: str = "", capacity: Optional[int] = None):
        self.sub, self.name, self.dir, self.capacity = sub, name, dir, capacity
        self._ended = False  # the local buffer was closed because the source ended
        remote = int(sub.info["capacity"])
        if capacity is None and remote > MAX_REMOTE_CAPACITY:
            raise BridgeError(f"{sub.key}/schema: the publisher's buffer keeps {remote} rows, more than the "
                              f"{MAX_REMOTE_CAPACITY} a subscriber takes from the network; give --capacity ROWS")
        self.p = None

    def _create(self, first: int) -> None:
        # The old buffer is closed but kept, so that the new one replaces it with the next epoch (local readers
        # that follow restarts finish the old one, then move); the last one is removed by close().
        if self.p is not None:
            self.p.close()
        info = self.sub.info
        cap = self.capacity or min(int(info["capacity"]), MAX_REMOTE_CAPACITY)
        # The local schema names the source buffer it relays: a relay started again after being killed finds
        # it in the buffer it replaces, and continues that buffer's indices (below).
        source = {"key": self.sub.key, "epoch": self.sub.source[0], "created_ns": self.sub.source[1]}
        schema = json.dumps({**json.loads(info["schema"]), "cbuf_source": source}, separators=(",", ":"))
        base = first
        if self.p is None:  # the first buffer of this relay: does it continue one that a killed relay left?
            left = self._left_by_earlier_relay(source)
            if left is not None and left <= first:
                base = left  # rows [left, first) reached neither relay: skipped, so local readers count them lost
        self.p = _core.Producer(self.name, self.sub.row_size, cap, schema, self.sub.fingerprint, self.dir,
                                base_index=base)
        if first > base:
            self.p.skip(first - base)
        st = os.stat(self.p.path)
        self._file = (self.p.path, st.st_dev, st.st_ino)

    def _left_by_earlier_relay(self, source: dict) -> Optional[int]:
        """The head of a closed or dead local buffer of this name that relayed the same source buffer (its
        schema's `cbuf_source`), or None."""
        from .reader import Reader
        try:
            with Reader(self.name, dir=self.dir, attach_timeout=0) as old:
                same = old.schema.get("cbuf_source") == source and old.fingerprint == self.sub.fingerprint
                return old.head if same and old.state in ("closed", "dead") else None
        except Error:
            return None

    @property
    def path(self) -> Optional[str]:
        return None if self.p is None else self.p.path

    def write(self, b: Batch) -> None:
        if self.p is None or b.restart is not None or self._ended:
            self._create(b.first - b.lost)
        self._ended = b.ended is not None
        if b.lost:
            self.p.skip(b.lost)
        if len(b.rows):
            self.p.write_batch(np.ascontiguousarray(b.rows))
        if b.ended:  # the source buffer ended: the local one is closed too (kept: local readers finish it)
            self.p.close()

    def close(self) -> None:
        """Closes the local buffer and removes it (if it is still this relay's file): no debris is left."""
        if self.p is not None:
            self.p.close()
            _core.unlink_if_unheld(*self._file)
            self.p = None
