"""Finding buffers by name or in the search directories, for every command."""
import difflib
import stat
import sys
import time
from pathlib import Path
from typing import Optional

from .. import _core
from ..errors import CliError, Error, NotFoundError
from ..reader import Reader
from . import stopping


def search_dirs(d=None) -> list:
    """Where buffers are: the runtime's search directories ($CBUF_DIR or /dev/shm, and a hugetlbfs mount)."""
    return [Path(x) for x in _core.search_dirs(d or "")]


def candidates(d=None):
    """(path, lstat) of each regular file large enough to be a buffer, in the search directories."""
    for folder in search_dirs(d):
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        for p in entries:
            try:
                st = p.lstat()
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_size >= _core.HEADER_SIZE and not p.name.startswith("."):
                yield p, st


def try_attach(path) -> Optional[Reader]:
    try:
        return Reader(str(path), attach_timeout=0)
    except Error:
        return None


def open_buffer(name: str, command: str = "", wait: Optional[float] = None, **kw) -> Reader:
    """Attach, turning 'not found' into a message with close matches. command: a following command's name -
    it then waits for the buffer to appear (up to `wait` seconds, None: until Ctrl-C; saying so once on stderr)
    and follows producer restarts. A reader that had to wait starts at the buffer's first row, whatever `start`
    asks: every row produced since it began waiting is then received or counted lost."""
    announced = False
    deadline = None if wait is None else time.monotonic() + wait
    while True:
        stopping.check()
        try:
            return Reader(name, attach_timeout=0.25 if command else 0.5, follow=bool(command), **kw)
        except NotFoundError:
            if not command or (deadline is not None and time.monotonic() >= deadline):
                names = [p.name for p, _ in candidates()]
                close = difflib.get_close_matches(Path(name).name, names, n=3, cutoff=0.5)
                hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                raise CliError(f"no buffer {name!r}{hint} (cbuf ls lists the buffers)") from None
            if not announced:
                print(f"cbuf {command}: waiting for {name} to appear; Ctrl-C to stop", file=sys.stderr, flush=True)
                announced = True
                kw["start"] = "oldest"  # the rows it writes from its creation on are all rows "since we waited"
