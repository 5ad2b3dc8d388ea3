"""Finding buffers by name or in the search directories, for every command."""
import sys
import time
from typing import Optional

from .._search import did_you_mean
from ..errors import Error, NotFoundError
from .errors import CliError
from ..reader import Reader
from . import stopping


def try_attach(path) -> Optional[Reader]:
    try:
        return Reader(str(path), attach_timeout=0)
    except Error:
        return None


class _EarlierRun(Exception):
    """open_buffer(live=True) found a buffer an earlier run left closed or dead."""


def open_buffer(name: str, command: str = "", wait: Optional[float] = None, live: bool = False, **kw) -> Reader:
    """Attach, turning 'not found' into a message with close matches. command: a following command's name -
    it then waits for the buffer to appear (up to `wait` seconds, None: until Ctrl-C; saying so once on stderr)
    and follows producer restarts. A reader that had to wait starts at the buffer's first row, whatever `start`
    asks: every row produced since it began waiting is then received or counted lost. live: attach only to a
    buffer whose producer is live (a closed or dead one left by an earlier run is waited past)."""
    announced = False
    deadline = None if wait is None else time.monotonic() + wait
    began = time.time_ns()
    while True:
        stopping.check()
        try:
            r = Reader(name, attach_timeout=0.25 if command else 0.5, follow=bool(command), **kw)
            if live and r.state != "live" and r.header["created_ns"] < began:  # an earlier run's: wait past it
                r.close()
                raise _EarlierRun()
            if command and r.state != "live":  # the stale-buffer trap: say what it is
                state = r.state
                since = (f" since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(r.header['closed_ns'] / 1e9))}"
                         if state == "closed" else "")
                print(f"cbuf {command}: {r.path} is {state}{since} ({r.head - r.base_index} rows, epoch {r.epoch}): "
                      "an earlier run's buffer (--live waits for a live producer instead)", file=sys.stderr,
                      flush=True)
            return r
        except (NotFoundError, _EarlierRun) as e:
            if not command or (deadline is not None and time.monotonic() >= deadline):
                if isinstance(e, _EarlierRun):
                    raise CliError(f"{name}: no live producer replaced the buffer an earlier run left (--live)") \
                        from None
                raise CliError(f"no buffer {name!r}{did_you_mean(name)} (cbuf ls lists the buffers)") from None
            if not announced:
                what = f"a live producer of {name}" if isinstance(e, _EarlierRun) else f"{name} to appear"
                print(f"cbuf {command}: waiting for {what}; Ctrl-C to stop", file=sys.stderr, flush=True)
                announced = True
                kw["start"] = "oldest"  # the rows it writes from its creation on are all rows "since we waited"
