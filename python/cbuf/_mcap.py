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
Values: integers and floats as JSON numbers (floats at full precision; NaN and infinities as the strings
"nan", "inf", "-inf", which JSON lacks), bools as true/false, arrays as lists, strings as text,
timestamp_ns as integer nanoseconds.
"""
import json
import time
from pathlib import Path

import numpy as np

from ._dtype import time_column
from ._jsonrows import NON_FINITE, json_schema, messages
from .errors import require

ROW_SCHEMA_ENCODING = "jsonschema"
MESSAGE_ENCODING = "json"


def _require():
    require("mcap.writer", "mcap", "MCAP recordings")


class Writer:
    """Streams rows into `out` as they are read: one message per row, zstd-compressed chunks."""

    def __init__(self, out: Path, meta: dict, dtype: np.dtype, columns: tuple):
        _require()
        from mcap.writer import CompressionType, Writer as McapWriter
        schema = json.loads(meta["schema_json"])
        self.columns = columns
        self.ts = time_column(columns)
        self.file = open(out, "wb")
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
        self.lost_channel = self.w.register_channel(topic=f"/cbuf/{name}/lost", message_encoding=MESSAGE_ENCODING,
                                                    schema_id=lost_sid)
        self.last_time = 0

    def append(self, first: int, rows: np.ndarray) -> None:
        add = self.w.add_message
        for i, (t, data) in enumerate(messages(first, rows, self.columns, self.ts)):
            add(channel_id=self.channel, log_time=t, publish_time=t, sequence=(first + i) & 0xFFFFFFFF, data=data)
            self.last_time = t

    def lost(self, start: int, stop: int) -> None:
        t = self.last_time or time.time_ns()
        self.w.add_message(channel_id=self.lost_channel, log_time=t, publish_time=t, sequence=0,
                           data=json.dumps({"first": start, "count": stop - start}).encode())

    def idle(self) -> None:
        pass

    def finish(self, meta: dict, epoch: int) -> None:
        self.w.add_metadata("cbuf", {"meta": json.dumps(meta), "epoch": str(epoch)})
        self.w.finish()
        self.file.close()

    def abort(self) -> None:
        try:
            self.w.finish()
        finally:
            self.file.close()


def load(path: Path, dtype_for):
    """(meta, rows) of an MCAP recording. dtype_for(meta) checks the metadata and returns (columns, dtype)."""
    _require()
    from mcap.exceptions import McapError
    from mcap.reader import make_reader
    from .recording import RecordingError, bad
    try:
        with open(path, "rb") as f:
            reader = make_reader(f)
            meta = None
            for m in reader.iter_metadata():
                if m.name == "cbuf":
                    meta = json.loads(m.metadata["meta"])
            if meta is None:
                raise RecordingError(f"{path}: not a cbuf recording (no 'cbuf' metadata record)")
            columns, dtype = dtype_for(meta)
            topic = f"/cbuf/{Path(meta['source']).name}"
            messages = [json.loads(msg.data) for _, _, msg in reader.iter_messages(topics=[topic])]
    except RecordingError:
        raise
    except (McapError, ValueError, KeyError, TypeError) as e:
        raise bad(path, f"not a readable cbuf MCAP file ({type(e).__name__}: {e})") from None
    data = np.zeros(len(messages), dtype=dtype)
    for c in columns:
        try:
            values = [m[c.name] for m in messages]
            if c.numpy.startswith("S"):
                data[c.name] = [v.encode() for v in values]
            elif np.dtype(c.numpy).kind == "f":
                data[c.name] = [[NON_FINITE.get(x, x) for x in v] if c.count else NON_FINITE.get(v, v)
                                for v in values]
            else:
                data[c.name] = values
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise bad(path, f"column {c.name!r} does not hold {c.type} values ({type(e).__name__}: {e})") from None
    return meta, data
