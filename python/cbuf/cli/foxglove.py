"""cbuf foxglove: a Foxglove WebSocket server (the foxglove-sdk package) streaming buffers live to Foxglove.

One channel `/cbuf/<buffer>` per buffer, with the rows in the encoding of MCAP recordings (formats/mcap.py):
cdr messages with the row's OMG IDL schema by default, or JSON with a JSON Schema (--encoding json), so
Foxglove plots any column. Plots do not need
300 000 rows a second: each channel sends at most --max-rate rows per second, the newest row at each tick;
the rows skipped that way, and the rows lost because the view fell behind the producer, are counted on
`/cbuf/<buffer>/stats` once a second ({"received", "sent", "decimated", "lost"}). It follows producer
restarts (a new schema gets a new channel). Ctrl-C stops the server.
"""
import sys
import time

from ..errors import require
from ..formats.mcap import ENCODINGS, Encoder, row_schema
from .errors import CliError
from .args import POSITIVE_INT, POSITIVE_SECONDS, add_wait
from .find import open_buffer
from . import stopping


def add(sub) -> None:
    s = sub.add_parser("foxglove", help="serve buffers live to Foxglove over WebSocket (pip install 'cbuf[foxglove]')")
    s.add_argument("buffer", nargs="+", help="buffer names or paths")
    s.add_argument("--port", type=POSITIVE_INT, default=8765, help="WebSocket port on 127.0.0.1 (default 8765)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--max-rate", type=POSITIVE_SECONDS, default=100.0, metavar="ROWS_PER_S",
                   help="rows per second per channel at most (default 100); the newest row is sent at each tick")
    s.add_argument("--encoding", choices=ENCODINGS, default="cdr",
                   help="messages: cdr (the row's bytes, OMG IDL schema; default) or json (JSON Schema)")
    add_wait(s)
    s.set_defaults(func=run)


def _require():
    return require("foxglove", "foxglove", "the Foxglove server")


class _Feed:
    """One buffer: its reader, its channels, and what it sent and skipped."""

    def __init__(self, foxglove, reader, max_rate: float, encoding: str):
        self.fg, self.r, self.period, self.encoding = foxglove, reader, 1.0 / max_rate, encoding
        self.next_send = 0.0
        self.received = self.sent = self.lost = 0
        self.stats_channel = None
        self._open_channels()

    def _open_channels(self) -> None:
        name = self.r.path.rsplit("/", 1)[-1]
        self.encoder = Encoder(self.encoding, self.r.dtype, self.r.columns)
        schema_name, schema_encoding, data, message_encoding = row_schema(
            self.r.schema, self.r.fingerprint, self.r.row_size, self.r.columns, self.encoding)
        self.channel = self.fg.Channel(
            f"/cbuf/{name}", message_encoding=message_encoding,
            schema=self.fg.Schema(name=schema_name, encoding=schema_encoding, data=data),
            metadata={"cbuf_path": self.r.path, "cbuf_epoch": str(self.r.epoch)})
        if self.stats_channel is None:
            self.stats_channel = self.fg.Channel(f"/cbuf/{name}/stats", schema={
                "type": "object", "title": "cbuf_stats", "properties": {
                    "received": {"type": "integer", "description": "rows read from the buffer"},
                    "sent": {"type": "integer", "description": "rows sent on the channel"},
                    "decimated": {"type": "integer", "description": "rows read but not sent (--max-rate)"},
                    "lost": {"type": "integer", "description": "rows overwritten before the view read them"},
                    "epoch": {"type": "integer", "description": "the producer's epoch"}}})

    def poll(self, now: float) -> bool:
        """Reads what is new; sends the newest row if a tick is due. True if anything was read."""
        res = self.r.read_new()
        if res.restart:
            if res.restart.schema_changed:
                self.channel.close()
                self._open_channels()
            return True
        self.lost += res.lost
        n = len(res.rows)
        self.received += n
        if n and now >= self.next_send:
            last = res.rows[n - 1:]
            times, data = self.encoder.encode(res.first + n - 1, last)
            self.channel.log(data[0], log_time=times[0])
            self.sent += 1
            self.next_send = max(self.next_send + self.period, now)
        return n > 0

    def report(self) -> None:
        self.stats_channel.log({"received": self.received, "sent": self.sent,
                                "decimated": self.received - self.sent, "lost": self.lost, "epoch": self.r.epoch})


def run(args) -> int:
    fg = _require()
    stop = stopping.install()
    readers = [open_buffer(b, "foxglove", args.wait, live=args.live, start="end") for b in args.buffer]
    try:
        server = fg.start_server(name="cbuf", host=args.host, port=args.port)
    except Exception as e:  # the SDK raises its own error types for a port in use or a bad address
        raise CliError(f"cannot listen on {args.host}:{args.port}: {e}") from None
    try:
        feeds = [_Feed(fg, r, args.max_rate, args.encoding) for r in readers]
        print(f"cbuf foxglove: serving {', '.join(r.path for r in readers)} on ws://{args.host}:{server.port} "
              f"(at most {args.max_rate:g} rows/s per channel); open it in Foxglove with 'Open connection' -> "
              f"Foxglove WebSocket; Ctrl-C to stop", file=sys.stderr, flush=True)
        next_report = time.monotonic() + 1.0
        while not stop.is_set():
            now = time.monotonic()
            busy = False
            for f in feeds:
                busy |= f.poll(now)
            if now >= next_report:
                for f in feeds:
                    f.report()
                next_report = now + 1.0
            if not busy:
                time.sleep(min(0.005, feeds[0].period / 4))
        print("cbuf foxglove: stopped", file=sys.stderr)  # SIGTERM or Ctrl-C: how a server is stopped
        return 0
    finally:
        server.stop()
        for r in readers:
            r.close()
