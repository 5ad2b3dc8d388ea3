"""MCAP recordings (the `mcap` package): what `cbuf record -o run.mcap` writes and `cbuf replay run.mcap` reads.

Encoding: JSON messages described by a JSON Schema built from the cbuf schema ("jsonschema" schema encoding,
"json" message encoding). Foxglove, the `mcap` CLI and every MCAP library decode and plot that without cbuf
and without generated code; protobuf would be smaller but needs a descriptor per schema. Chunks are
zstd-compressed, which recovers most of JSON's size.

Layout:
  channel `/cbuf/<buffer>`        one message per row: {"row_index": n, <column>: value, ...}; log and
                                  publish time = the row's first timestamp_ns column, else the time it was read
  channel `/cbuf/<buffer>/lost`   one message per lost range: {"first": n, "count": k}
  metadata `cbuf`                 {"meta": the recording's metadata as JSON}, written when the recording ends
The file is written under the recording's partial name (recording.Output: `.run.mcap.partial.mcap`) and
renamed into place when it is complete; a killed recorder leaves the partial file, whose finished chunks MCAP
readers stream, but which `replay` refuses (it has no `cbuf` metadata record).

Reading (open_rows) streams the file record by record with bounded memory: a chunk may decompress to at most
MAX_CHUNK bytes (and exactly to the size it declares), every chunk's CRC and the data section's CRC are
checked, and messages are read in the order they were written - the order they were recorded - whatever
their log times.
Values: integers and floats as JSON numbers (floats at full precision; NaN and infinities as the strings
"nan", "inf", "-inf", which JSON lacks), bools as true/false, arrays as lists, strings as text,
timestamp_ns as integer nanoseconds.
"""
import json
import re
import struct
import time
import zlib
from pathlib import Path

import numpy as np

from ._dtype import time_column
from ._jsonrows import NON_FINITE, json_schema, messages
from .errors import require

ROW_SCHEMA_ENCODING = "jsonschema"
MESSAGE_ENCODING = "json"
MAX_CHUNK = 64 << 20  # bytes a chunk may decompress to (cbuf record writes chunks of 1 MiB)


def require_packages():
    require("mcap.writer", "mcap", "MCAP recordings")


class Writer:
    """Streams rows into the partial file of `out` (recording.Output) as they are read: one message per row,
    zstd-compressed chunks."""

    def __init__(self, out, meta: dict, dtype: np.dtype, columns: tuple):
        require_packages()
        from mcap.writer import CompressionType, Writer as McapWriter
        self.out, self.file = out, None
        schema = json.loads(meta["schema_json"])
        self.columns = columns
        self.ts = time_column(columns)
        try:
            self.file = open(out.tmp, "wb")
            self.w = McapWriter(self.file, compression=CompressionType.ZSTD)
            self.w.start(profile="", library="cbuf")
            name = Path(meta["source"]).name
            sid = self.w.register_schema(name=str(schema.get("name", name)), encoding=ROW_SCHEMA_ENCODING,
                                         data=json.dumps(json_schema(schema, columns)).encode())
            self.channel = self.w.register_channel(topic=f"/cbuf/{name}", message_encoding=MESSAGE_ENCODING,
                                                   schema_id=sid, metadata={"cbuf_source": meta["source"]})
            lost_sid = self.w.register_schema(name="cbuf_lost", encoding=ROW_SCHEMA_ENCODING, data=json.dumps({
                "type": "object", "title": "cbuf_lost", "properties": {
                    "first": {"type": "integer", "description": "first row index lost"},
                    "count": {"type": "integer", "description": "rows lost"}}}).encode())
            self.lost_channel = self.w.register_channel(topic=f"/cbuf/{name}/lost",
                                                        message_encoding=MESSAGE_ENCODING, schema_id=lost_sid)
        except OSError as e:
            raise self._failed(e) from None
        self.last_time = 0

    def _failed(self, e: BaseException):
        f, self.file = self.file, None
        if f is not None:
            try:
                f.close()
            except OSError:
                pass
        return self.out.failed(e)

    def append(self, first: int, rows: np.ndarray) -> None:
        add = self.w.add_message
        try:
            for i, (t, data) in enumerate(messages(first, rows, self.columns, self.ts)):
                add(channel_id=self.channel, log_time=t, publish_time=t, sequence=(first + i) & 0xFFFFFFFF,
                    data=data)
                self.last_time = t
        except OSError as e:
            raise self._failed(e) from None

    def lost(self, start: int, stop: int) -> None:
        t = self.last_time or time.time_ns()
        try:
            self.w.add_message(channel_id=self.lost_channel, log_time=t, publish_time=t, sequence=0,
                               data=json.dumps({"first": start, "count": stop - start}).encode())
        except OSError as e:
            raise self._failed(e) from None

    def idle(self) -> None:
        pass

    def finish(self, meta: dict, epoch: int) -> None:
        try:
            self.w.add_metadata("cbuf", {"meta": json.dumps(meta), "epoch": str(epoch)})
            self.w.finish()
            self.file.close()  # a failure here leaves self.file set: _failed closes it again, quietly
            self.file = None
            self.out.commit()
        except OSError as e:
            raise self._failed(e) from None

    def abort(self) -> None:
        self._failed(RuntimeError("aborted"))


# --- reading ----------------------------------------------------------------------------------------------
_MESSAGE = struct.Struct("<HIQQ")  # channel id, sequence, log time, publish time; then the data


def _records(path: Path):
    """The file's top-level records, CRCs checked, none larger than a chunk may be."""
    from mcap.stream_reader import StreamReader
    with open(path, "rb") as f:
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


def _messages(path: Path, topic: str):
    """The data of each message on `topic`, in the order written, chunks decompressed one at a time."""
    import io
    from mcap.data_stream import ReadDataStream
    from mcap.opcode import Opcode
    from mcap.records import Channel, Chunk, Message
    channels = set()
    for record in _records(path):
        if isinstance(record, Chunk):
            for op, body in _inner(_chunk_data(record)):
                if op == Opcode.CHANNEL:
                    ch = Channel.read(ReadDataStream(io.BytesIO(body)))
                    if ch.topic == topic:
                        channels.add(ch.id)
                elif op == Opcode.MESSAGE and _MESSAGE.unpack_from(body)[0] in channels:
                    yield body[_MESSAGE.size:]
        elif isinstance(record, Channel) and record.topic == topic:
            channels.add(record.id)
        elif isinstance(record, Message) and record.channel_id in channels:
            yield record.data


def open_rows(path: Path, checked):
    """(meta, batches) of an MCAP recording. checked(meta, where) -> (schema, columns, dtype) checks the
    metadata; batches() yields the rows in the order they were written, BATCH at a time."""
    require_packages()
    from mcap.exceptions import McapError
    from mcap.records import Metadata
    from ._recfile import BATCH, RecordingError, bad, json_loads

    errors = (McapError, ValueError, KeyError, TypeError, struct.error, EOFError, RuntimeError, IndexError)

    def damaged(e):
        return bad(path, f"not a readable cbuf MCAP file ({type(e).__name__}: {e})")
    try:
        meta = next((m.metadata.get("meta") for m in _records(path) if isinstance(m, Metadata) and m.name == "cbuf"),
                    None)
    except errors as e:
        raise damaged(e) from None
    if meta is None:
        raise RecordingError(f"{path}: not a cbuf recording (no 'cbuf' metadata record)")
    meta = json_loads(meta, path, "its 'cbuf' metadata")
    _, columns, dtype = checked(meta, str(path))
    topic = f"/cbuf/{Path(str(meta.get('source', ''))).name}"

    def rows_of(messages: list) -> tuple:
        """(rows, their indices - the messages' row_index - or None if any lacks a valid one)."""
        data = np.zeros(len(messages), dtype=dtype)
        for c in columns:
            try:
                data[c.name] = _column([m[c.name] for m in messages], c)
            except (KeyError, TypeError, ValueError, OverflowError) as e:
                raise bad(path, f"column {c.name!r} does not hold {c.type} values ({type(e).__name__}: {e})") \
                    from None
        idx = [m.get("row_index") for m in messages]
        valid = all(type(i) is int and 0 <= i < 2**63 for i in idx)
        return data, (np.array(idx, dtype=np.uint64) if valid else None)

    def batches():
        pending = []
        try:
            for data in _messages(path, topic):
                m = json_loads(data, path, "a row message")
                if not isinstance(m, dict):
                    raise bad(path, "a row message is not a JSON object")
                pending.append(m)
                if len(pending) == BATCH:
                    yield rows_of(pending)
                    pending = []
        except RecordingError:
            raise
        except errors as e:
            raise damaged(e) from None
        if pending:
            yield rows_of(pending)
    return meta, batches
