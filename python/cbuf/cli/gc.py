"""cbuf gc: remove buffers whose producer is dead (with --closed, closed ones too), never a held one."""
import os
import time

from .. import _core
from .args import SECONDS
from .._search import candidates
from .find import try_attach


def add(sub) -> None:
    s = sub.add_parser("gc", help="remove buffers whose producer is dead (and, with --closed, closed ones)")
    s.add_argument("dir", nargs="?")
    s.add_argument("--closed", action="store_true", help="also remove buffers their producer closed")
    s.add_argument("--older-than", type=SECONDS, metavar="SECONDS",
                   help="only buffers closed (or, dead, created) at least this long ago")
    s.add_argument("--dry-run", action="store_true", help="list what would be removed")
    s.set_defaults(func=run)


def run(args) -> int:
    me = os.geteuid()
    removed = 0
    for path, st in candidates(args.dir):
        if st.st_uid != me:
            continue  # never someone else's file
        r = try_attach(path)
        if r is None:
            continue  # not a cbuf buffer
        state, h, schema = r.state, r.header, r.schema_name
        pid = h["producer_pid"]
        r.close()
        if state not in (("dead", "closed") if args.closed else ("dead",)):
            continue
        since_ns = h["closed_ns"] if state == "closed" else h["created_ns"]
        if args.older_than is not None and time.time() - since_ns / 1e9 < args.older_than:
            continue
        # The runtime removes it only if no producer holds its lock and the name still holds the same file.
        if _core.unlink_if_unheld(str(path), st.st_dev, st.st_ino, args.dry_run):
            removed += 1
            print(f"{'would remove' if args.dry_run else 'removed'} {path} ({state} producer pid {pid}, "
                  f"schema {schema!r})")
    if removed == 0:
        print("nothing to remove: no buffer with a dead producer" + (" or a closed one" if args.closed else ""))
    return 0
