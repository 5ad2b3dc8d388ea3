"""Stage 5: write outputs - atomically, and only when the content changed (so builds do not redo work)."""
import os
import tempfile
from pathlib import Path


def write_if_changed(path: Path, text: str) -> bool:
    """Writes `text` to `path` unless it already holds exactly that. Returns True if the file was written.
    The new content goes to a temporary file in the same directory first, so a reader never sees half a file."""
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
