"""`.parquet` recordings (pyarrow): one column per flat column (an array column is name[0], name[1], ...), each
with its cbuf type, unit and doc in the field's metadata, and the recording's metadata under the key `cbuf`.
Values, not bytes: a string column is Parquet binary holding its exact bytes (UTF-8 text, as written - the
file's column types are fixed when it starts, before any value that is not UTF-8 could come; decode it in
pandas with `.str.decode("utf-8")`); replay writes zero padding.

Streamed as row groups of at most ROW_GROUP rows or GROUP_BYTES of rows (or what FLUSH_SECONDS x 20 gathers),
so memory stays bounded.
Parquet writes its footer - the index of the row groups, and the final `cbuf` metadata - when the file ends:
a recorder killed with kill -9 leaves a partial file that no Parquet reader opens (use --split-duration to
bound what a crash can cost).
"""
import json
import time
from pathlib import Path

import numpy as np

from .._dtype import element, flat_columns
from ..errors import require as _require
from .common import (BATCH, FLUSH_SECONDS, RecordingError, Stored, Writer as _Writer, arrow_arrays, bad, checked,
                     json_loads)

SUFFIX = ".parquet"
WHAT = "Parquet"
ROW_GROUP = 1 << 16  # rows per row group at most,
GROUP_BYTES = 16 << 20  # and row bytes per row group at most (memory stays bounded for wide rows too)
GROUP_SECONDS = 20 * FLUSH_SECONDS  # a row group is written at least this often while rows come


def require():
    return _require("pyarrow.parquet", "parquet", "Parquet recordings")


class Writer(_Writer):
    MULTI = False

    def _open(self) -> None:
        import pyarrow as pa
        pq = require()
        s = self.streams[0]
        info = {c.get("name"): c for c in json.loads(s.meta["schema_json"]).get("columns", [])}
        fields = []  # each column's type, unit and doc in its own field metadata, for tools that show them
        # Strings are binary (arrow_arrays): a streamed file fixes its column types at the start, and a later
        # value that is not UTF-8 could not be written into a text column.
        probe = arrow_arrays(np.zeros(1, dtype=s.dtype), s.columns)
        for name, (c, _) in flat_columns(s.columns).items():
            extra = {k: str(info.get(c.name, {}).get(k, "")) for k in ("unit", "doc")}
            fields.append(pa.field(name, probe[name].type,
                                   metadata={"cbuf_type": c.type, **{k: v for k, v in extra.items() if v}}))
        self.schema = pa.schema(fields, metadata={"cbuf": json.dumps(self.tallies[0].meta(False))})
        # Dictionary encoding only where values repeat (strings): on measured values it costs 3-4x the time and
        # makes the file larger.
        texts = [f.name for f in fields if pa.types.is_binary(f.type)]
        self.pa, self.w = pa, pq.ParquetWriter(self.out.tmp, self.schema, use_dictionary=texts)
        self.group_rows = max(1, min(ROW_GROUP, GROUP_BYTES // s.dtype.itemsize))
        self.pending, self.pending_rows, self.grouped, self.written = [], 0, time.monotonic(), 0

    def _append(self, k: int, first: int, rows: np.ndarray) -> None:
        self.pending.append(self.pa.table(arrow_arrays(rows, self.streams[0].columns)))
        self.pending_rows += len(rows)
        if self.pending_rows >= self.group_rows or time.monotonic() - self.grouped >= GROUP_SECONDS:
            self._write_group()

    def _write_group(self) -> None:
        if self.pending:
            table = self.pa.concat_tables(self.pending).cast(self.schema)
            self.w.write_table(table, row_group_size=self.group_rows)
            self.written += table.nbytes
        self.pending, self.pending_rows, self.grouped = [], 0, time.monotonic()

    def _flush(self) -> None:
        if time.monotonic() - self.grouped >= GROUP_SECONDS:
            self._write_group()

    def _finish(self, metas: list) -> None:
        self._write_group()
        self.w.add_key_value_metadata({"cbuf": json.dumps(metas[0])})
        self.w.close()

    def _close(self) -> None:
        self.w.close()

    def size(self) -> int:
        return self.written + sum(t.nbytes for t in self.pending)


def load(path: Path) -> list:
    pq = require()
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises its own ArrowInvalid/ArrowIOError hierarchy for damaged files
        raise bad(path, f"not a readable Parquet file ({e})") from None
    # The final metadata is the file's (written at the end); the schema's is what the recording began with.
    found = (pf.metadata.metadata or {}).get(b"cbuf") or (pf.schema_arrow.metadata or {}).get(b"cbuf")
    if found is None:
        raise RecordingError(f"{path}: not a cbuf recording (no 'cbuf' entry in the Parquet metadata)")
    meta = json_loads(found, path, "its 'cbuf' metadata")
    _, columns, dtype = checked(meta, str(path))
    flat = flat_columns(columns)
    for name in flat:
        if name not in pf.schema_arrow.names:
            raise bad(path, f"column {name!r} of the schema is missing")

    def batches():
        try:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH, columns=list(flat)):
                data = np.zeros(batch.num_rows, dtype=dtype)
                for name, (c, j) in flat.items():
                    vals = batch.column(name).to_pylist()
                    try:
                        element(data, c, j)[:] = [v if isinstance(v, bytes) else str(v).encode() for v in vals] \
                            if c.numpy.startswith("S") else vals
                    except (TypeError, ValueError, OverflowError) as e:
                        raise bad(path, f"column {name!r} does not hold {c.type} values ({e})") from None
                yield data
        except RecordingError:
            raise
        except Exception as e:  # a damaged page or footer, found while reading
            raise bad(path, f"not a readable Parquet file ({e})") from None
    return [Stored(Path(str(meta.get("source", ""))).name, meta, batches)]
