"""cbuf bridge: buffers across machines over Eclipse Zenoh (pip install 'cbuf[zenoh]'); see cbuf/bridge.py.

    cbuf bridge pub NAME --key KEY [--listen tcp/0.0.0.0:7447] [--connect ...] [--batch N] [--max-delay S] [--block]
    cbuf bridge sub KEY --name LOCAL [--connect tcp/HOST:7447] [--listen ...] [--capacity N]
    cbuf bridge ls [--connect tcp/HOST:7447] [--listen ...]

pub follows the local buffer NAME (and its producer's restarts) and publishes its rows; sub makes a local buffer
LOCAL with the same schema and row indices. Ctrl-C or SIGTERM stops either, with a summary line.
"""
import json
import sys

from .. import bridge
from .args import POSITIVE_INT, SECONDS, add_wait
from . import stopping
from .find import open_buffer


def add(sub) -> None:
    s = sub.add_parser("bridge", help="carry buffers across machines over Zenoh (pip install 'cbuf[zenoh]')")
    roles = s.add_subparsers(dest="role", metavar="ROLE")
    roles.required = True
    p = roles.add_parser("pub", help="publish a local buffer's rows under a Zenoh key")
    p.add_argument("buffer", help="buffer name or path")
    p.add_argument("--key", required=True, help="Zenoh key, e.g. lab/daq (rows on KEY/rows, schema on KEY/schema)")
    p.add_argument("--batch", type=POSITIVE_INT,
                   help="rows per message at most (default: what fits 64 KiB, at most 1024)")
    p.add_argument("--max-delay", type=SECONDS, default=0.0, metavar="SECONDS",
                   help="how long a batch may wait to fill (default 0: send what is there; batches grow with load)")
    p.add_argument("--block", action="store_true",
                   help="block when the network is congested (default: drop batches; subscribers count them lost)")
    p.add_argument("--start", choices=("end", "oldest"), default="end",
                   help="first row to publish: rows written from now on (default), or the oldest row kept")
    add_wait(p)
    _endpoints(p)
    p.set_defaults(func=run_pub)
    q = roles.add_parser("sub", help="write a published buffer into a local buffer, at the same row indices")
    q.add_argument("key", help="the publisher's --key")
    q.add_argument("--name", required=True, help="local buffer name (replaced if it exists)")
    q.add_argument("--dir", default="", help="directory for the local buffer (default $CBUF_DIR or /dev/shm)")
    q.add_argument("--capacity", type=POSITIVE_INT, help="local ring capacity in rows (default: the source's)")
    q.add_argument("--schema-timeout", type=SECONDS, default=10.0, metavar="SECONDS",
                   help="how long to wait for a publisher to answer (default 10)")
    _endpoints(q)
    q.set_defaults(func=run_sub)
    ls = roles.add_parser("ls", help="list the keys `cbuf bridge pub` processes publish on the network")
    ls.add_argument("--timeout", type=SECONDS, default=2.0, metavar="SECONDS",
                    help="how long to wait for answers (default 2)")
    _endpoints(ls)
    ls.set_defaults(func=run_ls)


def _endpoints(p) -> None:
    p.add_argument("--connect", action="append", default=[], metavar="ENDPOINT",
                   help="Zenoh endpoint to connect to, e.g. tcp/10.0.0.5:7447 (repeatable)")
    p.add_argument("--listen", action="append", default=[], metavar="ENDPOINT",
                   help="Zenoh endpoint to listen on, e.g. tcp/0.0.0.0:7447 (repeatable)")
    p.add_argument("--mode", choices=("peer", "client"), default="peer",
                   help="Zenoh mode: peer (default) or client (through a zenohd router)")
    p.add_argument("--config", metavar="FILE",
                   help="a Zenoh JSON5 configuration to start from: TLS, access control (docs/across-machines.md)")


def run_ls(args) -> int:
    """Like `ros2 topic list`: each key with the schema its publisher serves (Zenoh liveliness tokens)."""
    bridge.check_zenoh()
    session = bridge.open_session(args.connect, args.listen, args.mode, args.config)
    try:
        found = bridge.published(session, args.timeout)
    finally:
        session.close()
    for key, info in found:
        what = (f"schema {json.loads(info['schema']).get('name', '')!r}, {info['row_size']}-byte rows, "
                f"capacity {info['capacity']}, source epoch {info['epoch']}" if info else "(no valid schema reply)")
        print(f"{key}  {what}")
    if not found:
        print("no cbuf bridge publisher answered", file=sys.stderr)
    return 0


def run_pub(args) -> int:
    bridge.check_zenoh()  # a missing package is one line before anything is opened
    stop = stopping.install()
    r = open_buffer(args.buffer, "bridge pub", args.wait, live=args.live, start=args.start)
    session = pub = None
    try:
        session = bridge.open_session(args.connect, args.listen, args.mode, args.config)
        pub = bridge.Publisher(r, session, args.key, args.batch, args.max_delay, args.block)
        print(f"cbuf bridge pub: {r.path} -> {args.key}/rows (schema on {args.key}/schema)", file=sys.stderr,
              flush=True)
        while not stop.is_set():
            pub.step()
    finally:
        if pub is not None:
            pub.close()
            print(f"cbuf bridge pub: stopped; published {pub.sent} rows in {pub.batches} messages, "
                  f"{pub.lost} lost before publishing", file=sys.stderr)
        if session is not None:
            session.close()
        r.close()
    return 0


def run_sub(args) -> int:
    bridge.check_zenoh()
    stop = stopping.install()
    sub = relay = None
    try:
        sub = bridge.Subscription(args.key, args.connect, args.listen, args.schema_timeout, mode=args.mode,
                                  config_file=args.config, stop=stop)
        relay = bridge.Relay(sub, args.name, args.dir, args.capacity)
        print(f"cbuf bridge sub: subscribed to {args.key}/rows (schema {sub.schema.get('name', '')!r}, "
              f"{sub.row_size}-byte rows)", file=sys.stderr, flush=True)
        announced = False
        while not stop.is_set():  # goes on across source restarts; SIGTERM or Ctrl-C sets `stop`
            b = sub.next_batch(0.1)
            if b is None:
                continue
            relay.write(b)
            if not announced or b.restart:
                print(f"cbuf bridge sub: {args.key} -> {relay.path} (source epoch {b.epoch}, from row {b.first})",
                      file=sys.stderr, flush=True)
                announced = True
            if b.ended:
                print(f"cbuf bridge sub: the source {b.ended} at row {b.first}; {relay.path} is closed too "
                      "(waiting for a restart)", file=sys.stderr, flush=True)
    except bridge.Stopped:  # stopped while waiting for the publisher's schema
        pass
    finally:
        if relay is not None:  # subscribed: the summary (a refusal before that is its one error line)
            ignored = f"; ignored {sub.ignored} messages that were not valid batches" if sub.ignored else ""
            foreign = f", {sub.foreign} of another publisher" if sub.foreign else ""
            over = f"; started over {sub.start_overs} times after forged jumps" if sub.start_overs else ""
            print(f"cbuf bridge sub: stopped; received {sub.received} rows, lost {sub.lost} "
                  f"({sub.lost_source} at the source, {sub.lost_network} on the way){ignored}{foreign}{over}",
                  file=sys.stderr)
        if sub is not None:
            sub.close()
        if relay is not None:
            relay.close()
    return 0
