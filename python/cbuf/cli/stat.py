"""cbuf stat: the write rate, the rows a following reader loses, and the producer's liveness, per interval."""
import sys
import time

from .args import POSITIVE_INT, POSITIVE_SECONDS, add_wait
from .find import open_buffer
from . import stopping
from .present import restart_note


def add(sub) -> None:
    s = sub.add_parser("stat", help="write rate, lost rows of a following reader, producer liveness")
    s.add_argument("buffer")
    s.add_argument("-i", "--interval", type=POSITIVE_SECONDS, default=1.0, help="seconds per line (default 1)")
    s.add_argument("--count", type=POSITIVE_INT, help="stop after this many intervals")
    add_wait(s)
    s.set_defaults(func=run)


def run(args) -> int:
    stop = stopping.install()
    r = open_buffer(args.buffer, "stat", args.wait, live=args.live, start="end")
    tty = sys.stdout.isatty()
    n = 0
    last_head, last_t = r.head, time.monotonic()
    while (args.count is None or n < args.count) and not stop.is_set():
        deadline = last_t + args.interval
        lost = 0
        while time.monotonic() < deadline and not stop.is_set():  # follow like a reader would, counting what it loses
            res = r.read_new()
            lost += res.lost
            if res.restart:
                print(("\r" if tty else "") + restart_note(res), flush=True)
                last_head = res.restart.new_start
            elif not len(res.rows):
                r.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        now, head = time.monotonic(), r.head
        rate = (head - last_head) / (now - last_t)
        line = (f"{rate:12.0f} rows/s  {rate * r.row_size / 1e6:9.2f} MB/s  lost {lost:8d}  head {head}  "
                f"producer {r.state}")
        print(("\r" + line) if tty else line, end="" if tty else "\n", flush=True)
        last_head, last_t = head, now
        n += 1
    if tty:
        print()
    return 0
