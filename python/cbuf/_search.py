"""Where buffers are, for the reader's "did you mean" and the tools that list them (cbuf ls, gc)."""
import difflib
import stat
from pathlib import Path

from . import _core


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


def did_you_mean(name: str, d=None) -> str:
    """"; did you mean 'a', 'b'?" for the buffers whose names are close to `name`, or ""."""
    names = [p.name for p, _ in candidates(d)]
    close = difflib.get_close_matches(Path(name).name, names, n=3, cutoff=0.5)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
