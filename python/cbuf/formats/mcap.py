"""MCAP recordings: what `cbuf record -o run.mcap` writes and `cbuf replay run.mcap` reads. Written through
foxglove-sdk's MCAP writer (Rust), read back with the `mcap` package's record reader.

Encoding (default `cdr`): each row is one message, XCDR1 little-endian with an OMG IDL schema ("omgidl" schema
encoding) that the generator makes from the cbuf schema (cbuf_codegen/idl.py): the 4-byte header 00 01 00 00,
the row's index as a uint64, then the row's bytes exactly as they are in the ring - no per-field encoding, so
recording costs one copy, and Foxglove and @foxglove/omgidl-serialization decode every column. With
`--encoding json`, messages are JSON objects with a JSON Schema instead (_jsonrows.py), for tools that want
JSON. Chunks are zstd-compressed (or lz4, or none: --compression).

Layout, per buffer recorded (a file may hold several):
  channel `/cbuf/<buffer>`        one message per row; log and publish time = the row's first timestamp_ns
                                  column if positive, else the time it was read
  channel `/cbuf/<buffer>/lost`   one message per lost range: {"first": n, "count": k} (JSON)
  metadata `cbuf`                 {"meta": the recording's metadata as JSON, "topic": the channel, "epoch"},
                                  one per buffer, written when the recording ends
The file is flushed (its open chunk closed) every FLUSH_SECONDS. A recorder killed with kill -9 leaves the
partial file (`.run.mcap.partial.mcap`): MCAP readers stream its chunks up to the last flush, `replay` refuses
it (it has no `cbuf` metadata record).

Reading streams the file record by record with bounded memory: a chunk may decompress to at most MAX_CHUNK
bytes (and exactly to the size it declares), every chunk's CRC and the data section's CRC are checked, and
messages are read in the order they were written - the order they were recorded - whatever their log times.
"""
import io
import json
import re
import struct
import time
import zlib
from collections import deque
from pathlib import Path

import numpy as np

from .._dtype import time_column
from .._jsonrows import NON_FINITE, json_schema, messages
from ..errors import require as _require
from .common import BATCH, RecordingError, Sink, SinkWriter, Stored, bad, checked, json_loads, raw

SUFFIX = ".mcap"
WHAT = "MCAP"
ENCODINGS = ("cdr", "json")
COMPRESSIONS = ("zstd", "lz4", "none")
CDR_HEADER = b"\x00\x01\x00\x00"  # XCDR1, little-endian (CDR_LE), no options
CHUNK_SIZE = 1 << 20              # uncompressed bytes per chunk
# zstd's fastest level: twice the rows/s of its default (3) on cbuf's rows, files within a few percent.
COMPRESSION_LEVEL = 1
MAX_CHUNK = 64 << 20              # bytes a chunk may decompress to when read


def require():
    """The writer (foxglove-sdk) and the reader (mcap)."""
    _require("mcap.stream_reader", "mcap", "MCAP recordings")
    return _require("foxglove", "mcap", "MCAP recordings")


def row_schema(schema: dict, fingerprint: int, row_size: int, columns: tuple, encoding: str) -> tuple:
    """(schema name, schema encoding, schema data, message encoding) of a buffer's rows: the OMG IDL of the row
    (cdr) or the JSON Schema of a row message (json). `cbuf foxglove` serves its live channels with the same."""
    if encoding == "cdr":
        from cbuf_codegen import __version__, idl
        info = {x.get("name"): x for x in schema.get("columns", [])}
        canonical = {"name": str(schema.get("name", "cbuf")), "description": str(schema.get("description", "")),
                     "row_size": row_size, "columns": [{**info.get(c.name, {}), "name": c.name, "type": c.type,
                                                        "offset": c.offset} for c in columns]}
        row = idl.row(canonical, fingerprint)
        return row.schema_name, "omgidl", idl.text(canonical, fingerprint, __version__).encode(), "cdr"
    name = str(schema.get("name", "cbuf"))
    return name, "jsonschema", json.dumps(json_schema(schema, columns)).encode(), "json"


class Encoder:
    """Rows as messages of one encoding: encode(first, rows) -> ([log time ns], [message bytes])."""

    def __init__(self, encoding: str, dtype: np.dtype, columns: tuple):
        self.encoding, self.columns, self.row_size = encoding, columns, dtype.itemsize
        self.ts = time_column(columns)

    def times(self, rows: np.ndarray) -> list:
        now = time.time_ns()
        if self.ts is None:
            return [now] * len(rows)
        t = rows[self.ts].astype(np.int64)
        return np.where(t > 0, t, now).tolist()

    def encode(self, first: int, rows: np.ndarray) -> tuple:
        if self.encoding == "json":
            pairs = list(messages(first, rows, self.columns, self.ts))
            return [t for t, _ in pairs], [m for _, m in pairs]
        n, size = len(rows), 12 + self.row_size
        buf = np.empty((n, size), dtype=np.uint8)
        buf[:, :4] = np.frombuffer(CDR_HEADER, dtype=np.uint8)
        buf[:, 4:12] = np.arange(first, first + n, dtype="<u8").view(np.uint8).reshape(n, 8)
        buf[:, 12:] = raw(rows).reshape(n, self.row_size)
        data = buf.tobytes()
        return self.times(rows), [data[i:i + size] for i in range(0, n * size, size)]


def log_function(channel):
    """`channel.log(data, log_time)` without foxglove.Channel's per-call checks of the message's Python type
    (a third of the time per row): its BaseChannel's log where the SDK has one. Messages are bytes here."""
    base = getattr(channel, "base", None)
    log = getattr(base, "log", None)
    return log if callable(log) else (lambda data, t: channel.log(data, log_time=t))


LOST_SCHEMA = {"type": "object", "title": "cbuf_lost", "properties": {
    "first": {"type": "integer", "description": "first row index lost"},
    "count": {"type": "integer", "description": "rows lost"}}}


class Writer(SinkWriter):
    def _open(self) -> None:
        fg = require()
        from foxglove.mcap import MCAPCompression, MCAPWriteOptions
        encoding = self.options.get("encoding") or "cdr"
        compression = self.options.get("compression") or "zstd"
        self.sink = Sink(self.out.tmp)
        self.ctx = fg.Context()  # this file's channels only (the global context would log to every writer)
        self.w = self.handle = fg.open_mcap(self.sink, context=self.ctx, writer_options=MCAPWriteOptions(
            compression={"zstd": MCAPCompression.Zstd, "lz4": MCAPCompression.Lz4, "none": None}[compression],
            chunk_size=CHUNK_SIZE, profile="", compression_threads=0, compression_level=COMPRESSION_LEVEL))
        self.channels, self.lost_channels, self.encoders, self.last_time, self.logs = [], [], [], [], []
        for s in self.streams:
            schema = json.loads(s.meta["schema_json"])
            name, schema_encoding, data, message_encoding = row_schema(schema, s.meta["fingerprint"],
                                                                       s.dtype.itemsize, s.columns, encoding)
            self.channels.append(fg.Channel(
                f"/cbuf/{s.name}", message_encoding=message_encoding, context=self.ctx,
                schema=fg.Schema(name=name, encoding=schema_encoding, data=data),
                metadata={"cbuf_source": s.meta["source"]}))
            self.lost_channels.append(fg.Channel(f"/cbuf/{s.name}/lost", message_encoding="json", context=self.ctx,
                                                 schema=fg.Schema(name="cbuf_lost", encoding="jsonschema",
                                                                  data=json.dumps(LOST_SCHEMA).encode())))
            self.encoders.append(Encoder(encoding, s.dtype, s.columns))
            self.logs.append(log_function(self.channels[-1]))
            self.last_time.append(0)
        self.sink.check()

    def _append(self, k: int, first: int, rows: np.ndarray) -> None:
        times, data = self.encoders[k].encode(first, rows)
        deque(map(self.logs[k], data, times), maxlen=0)  # one call per row, no Python loop around it
        if times:
            self.last_time[k] = times[-1]
        self.sink.check()

    def _lost(self, k: int, start: int, stop: int) -> None:
        t = self.last_time[k] or time.time_ns()
        self.lost_channels[k].log(json.dumps({"first": start, "count": stop - start}).encode(), log_time=t)
        self.sink.check()

    def _flush(self) -> None:
        self.w.flush()
        self.sink.check()

    def _finish(self, metas: list) -> None:
        for s, meta, t in zip(self.streams, metas, self.tallies):
            self.w.write_metadata("cbuf", {"meta": json.dumps(meta), "topic": f"/cbuf/{s.name}",
                                           "epoch": str(t.epoch)})
        self.handle = None
        self.w.close()
        self.sink.check()
        self.sink.close()


# --- reading ----------------------------------------------------------------------------------------------
_MESSAGE = struct.Struct("<HIQQ")  # channel id, sequence, log time, publish time; then the data


def _records(path: Path):
    """The file's top-level records, CRCs checked, none larger than a chunk may be."""
    from mcap.stream_reader import StreamReader
    with path.open("rb") as f:
        yield from StreamReader(f, emit_chunks=True, validate_crcs=True, record_size_limit=MAX_CHUNK).records


def _chunk_data(chunk) -> bytes:
    """A chunk's records, decompressed into at most its declared size (never more than MAX_CHUNK), CRC checked."""
    size = chunk.uncompressed_size
    if size > MAX_CHUNK:
        raise ValueError(f"a chunk declares {size} bytes uncompressed, more than the {MAX_CHUNK} allowed")
    try:
        if chunk.compression == "zstd":
            import zstandard
            data = zstandard.ZstdDecompressor().stream_reader(chunk.data).read(size + 1)
        elif chunk.compression == "lz4":
            import lz4.frame
            data = lz4.frame.LZ4FrameDecompressor().decompress(chunk.data, max_length=size + 1)
        elif chunk.compression == "":
            data = chunk.data
        else:
            raise ValueError(f"a chunk is compressed with {chunk.compression!r}, which MCAP does not define")
    except ValueError:
        raise
    except Exception as e:  # zstandard.ZstdError, lz4's RuntimeError: damaged compressed data
        raise ValueError(f"a {chunk.compression} chunk does not decompress ({e})") from None
    if len(data) != size:
        raise ValueError(f"a chunk declares {size} bytes uncompressed and holds {len(data)}")
    if chunk.uncompressed_crc and zlib.crc32(data) != chunk.uncompressed_crc:
        raise ValueError("a chunk's CRC does not match its data")
    return data


def _inner(data: bytes):
    """(opcode, body) of each record inside a chunk."""
    at = 0
    while at < len(data):
        if at + 9 > len(data):
            raise ValueError("a chunk ends inside a record")
        opcode, length = data[at], int.from_bytes(data[at + 1:at + 9], "little")
        if at + 9 + length > len(data):
            raise ValueError("a record inside a chunk is longer than the chunk")
        yield opcode, data[at + 9:at + 9 + length]
        at += 9 + length


_DECIMAL = re.compile(r"-?[0-9]{1,20}")  # a 64-bit integer written as a string (_jsonrows.json_int)


def _column(values: list, c):
    """One column of decoded JSON values, checked: the JSON type must be the column's (an integer for an integer
    column, true/false for a bool, a number or "nan"/"inf"/"-inf" for a float), a number must fit it, a
    string its bytes, an array its length. Never a silent cast."""
    kind = np.dtype(c.numpy).kind
    if kind == "S":
        if not all(type(v) is str for v in values):
            raise ValueError("a value is not a string")
        out = [v.encode("utf-8", "surrogateescape") for v in values]
        if any(len(b) > np.dtype(c.numpy).itemsize for b in out):
            raise ValueError("a string is longer than the column")
        return out
    if c.count:
        if not all(type(v) is list and len(v) == c.count for v in values):
            raise ValueError(f"a value is not a list of {c.count}")
        flat = [x for v in values for x in v]
    else:
        flat = values
    if kind == "f":
        flat = [NON_FINITE.get(x, x) if type(x) is str else x for x in flat]
        ok = all(type(x) in (int, float) for x in flat)
    elif kind in "iu" and np.dtype(c.numpy).itemsize == 8:  # beyond 2^53 - 1 as decimal strings (_jsonrows)
        flat = [int(x) if type(x) is str and _DECIMAL.fullmatch(x) else x for x in flat]
        ok = all(type(x) is int for x in flat)
    else:
        ok = all(type(x) is (bool if kind == "b" else int) for x in flat)
    if not ok:
        raise ValueError(f"the values are not {c.type} values")
    try:
        with np.errstate(over="ignore"):
            arr = np.array(flat, dtype=c.numpy)
    except OverflowError:
        raise ValueError(f"a value does not fit {c.type}") from None
    if kind == "f" and np.isfinite(np.array(flat, dtype=np.float64)).sum() > np.isfinite(arr).sum():
        raise ValueError(f"a value does not fit {c.type}")  # 1e300 would become inf in a float32
    return arr.reshape(len(values), c.count) if c.count else arr


def _messages(path: Path, topic: str, encodings: dict):
    """The data of each message on `topic`, in the order written, chunks decompressed one at a time. The
    channel's message encoding is put in encodings["topic"]."""
    from mcap.data_stream import ReadDataStream
    from mcap.opcode import Opcode
    from mcap.records import Channel, Chunk, Message
    channels = set()

    def seen(ch):
        if ch.topic == topic:
            channels.add(ch.id)
            encodings[topic] = ch.message_encoding
    for record in _records(path):
        if isinstance(record, Chunk):
            for op, body in _inner(_chunk_data(record)):
                if op == Opcode.CHANNEL:
                    seen(Channel.read(ReadDataStream(io.BytesIO(body))))
                elif op == Opcode.MESSAGE and _MESSAGE.unpack_from(body)[0] in channels:
                    yield body[_MESSAGE.size:]
        elif isinstance(record, Channel):
            seen(record)
        elif isinstance(record, Message) and record.channel_id in channels:
            yield record.data


_ERRORS = (ValueError, KeyError, TypeError, struct.error, EOFError, RuntimeError, IndexError)


def load(path: Path) -> list:
    """The buffers of an MCAP recording: one per `cbuf` metadata record."""
    require()
    from mcap.exceptions import McapError
    from mcap.records import Metadata
    errors = (McapError,) + _ERRORS

    def damaged(e):
        return bad(path, f"not a readable cbuf MCAP file ({type(e).__name__}: {e})")
    try:
        found = [m.metadata for m in _records(path) if isinstance(m, Metadata) and m.name == "cbuf"]
    except errors as e:
        raise damaged(e) from None
    if not found:
        raise RecordingError(f"{path}: not a cbuf recording (no 'cbuf' metadata record)")
    out = []
    for record in found:
        meta = json_loads(record.get("meta"), path, "its 'cbuf' metadata")
        _, columns, dtype = checked(meta, str(path))
        name = Path(str(meta.get("source", ""))).name
        topic = record.get("topic") or f"/cbuf/{name}"
        out.append(Stored(topic.removeprefix("/cbuf/"), meta, _batches(path, topic, columns, dtype, errors)))
    if len({s.name for s in out}) != len(out):
        raise bad(path, "two of its 'cbuf' metadata records name the same channel")
    return out


def _batches(path: Path, topic: str, columns: tuple, dtype: np.dtype, errors: tuple):
    def damaged(e):
        return bad(path, f"not a readable cbuf MCAP file ({type(e).__name__}: {e})")

    def from_json(pending: list) -> tuple:
        """(rows, their indices - the messages' row_index - or None if any lacks a valid one)."""
        msgs = []
        for data in pending:
            m = json_loads(data, path, "a row message")
            if not isinstance(m, dict):
                raise bad(path, "a row message is not a JSON object")
            msgs.append(m)
        rows = np.zeros(len(msgs), dtype=dtype)
        for c in columns:
            try:
                rows[c.name] = _column([m[c.name] for m in msgs], c)
            except (KeyError, TypeError, ValueError, OverflowError) as e:
                raise bad(path, f"column {c.name!r} does not hold {c.type} values ({type(e).__name__}: {e})") \
                    from None
        idx = [m.get("row_index") for m in msgs]
        valid = all(type(i) is int and 0 <= i < 2**63 for i in idx)
        return rows, (np.array(idx, dtype=np.uint64) if valid else None)

    def from_cdr(pending: list) -> tuple:
        """(rows, indices) from cdr messages: each exactly the header, the index and the row's bytes."""
        size = 12 + dtype.itemsize
        if any(len(d) != size for d in pending):
            bad_len = next(len(d) for d in pending if len(d) != size)
            raise bad(path, f"a row message on {topic} is {bad_len} bytes, not the {size} of its schema's rows")
        buf = np.frombuffer(b"".join(pending), dtype=np.uint8).reshape(len(pending), size)
        if (buf[:, :4] != np.frombuffer(CDR_HEADER, dtype=np.uint8)).any():
            raise bad(path, f"a row message on {topic} is not little-endian XCDR1 (header 00 01 00 00)")
        idx = np.ascontiguousarray(buf[:, 4:12]).view("<u8").reshape(-1).astype(np.uint64)
        rows = np.empty(len(pending), dtype=dtype)
        rows.view(np.uint8).reshape(len(pending), dtype.itemsize)[:] = buf[:, 12:]
        return rows, (idx if (idx < 2**63).all() else None)

    def decode(pending: list, encoding) -> tuple:
        if encoding == "cdr":
            return from_cdr(pending)
        if encoding == "json":
            return from_json(pending)
        raise bad(path, f"channel {topic} has message encoding {encoding!r}; cbuf records cdr or json")

    def batches():
        encodings: dict = {}
        pending = []
        try:
            for data in _messages(path, topic, encodings):
                pending.append(data)
                if len(pending) == BATCH:
                    yield decode(pending, encodings.get(topic))
                    pending = []
        except RecordingError:
            raise
        except errors as e:
            raise damaged(e) from None
        if pending:
            yield decode(pending, encodings.get(topic))
    return batches
