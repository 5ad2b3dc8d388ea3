"""cbuf: one-producer, many-consumer ring buffers in shared memory - Python readers and tools.

    import cbuf
    with cbuf.open("sensors") as r:          # by name (in /dev/shm) or path
        print(r.latest())                    # newest row, validated
        batch = r.read_new()                 # rows since the last call, and exactly what was lost
"""
from typing import TYPE_CHECKING

from ._core import VERSION as __version__  # codegen/cbuf_codegen/VERSION, through CMake
from .errors import (BufferExistsError, Error, FormatError, NotFoundError, NotLiveError, NotPublishedError,
                     PermissionDeniedError, SchemaMismatchError)

if TYPE_CHECKING:
    from .producer import Producer, create
    from .reader import Reader, ReadResult, Restart, open


def __getattr__(name: str):
    """The reader (and NumPy with it) is imported on first use: `import cbuf.cli` starts fast, so the cbuf
    command can take over SIGTERM early (cli/stopping.py)."""
    if name in ("Reader", "ReadResult", "Restart", "open"):
        from . import reader
        return getattr(reader, name)
    if name in ("Producer", "create"):
        from . import producer
        return getattr(producer, name)
    raise AttributeError(f"module 'cbuf' has no attribute {name!r}")


__all__ = ["open", "create", "Producer", "Reader", "ReadResult", "Restart", "Error", "NotFoundError",
           "PermissionDeniedError", "FormatError", "NotPublishedError", "NotLiveError", "SchemaMismatchError",
           "BufferExistsError", "__version__"]
