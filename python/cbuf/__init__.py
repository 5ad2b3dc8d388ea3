"""cbuf: one-producer, many-consumer ring buffers in shared memory - Python readers and tools.

    import cbuf
    with cbuf.open("sensors") as r:          # by name (in /dev/shm) or path
        print(r.latest())                    # newest row, validated
        batch = r.read_new()                 # rows since the last call, and exactly what was lost
"""
from .errors import (BufferExistsError, Error, FormatError, NotFoundError, NotPublishedError,
                     PermissionDeniedError, SchemaMismatchError)
from .reader import Reader, ReadResult, Restart, open

__version__ = "0.1.0"
__all__ = ["open", "Reader", "ReadResult", "Restart", "Error", "NotFoundError", "PermissionDeniedError", "FormatError",
           "NotPublishedError", "SchemaMismatchError", "BufferExistsError", "__version__"]
