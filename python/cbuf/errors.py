"""The cbuf exception hierarchy. Every error names the path and what to do; `code` is the runtime's code."""

__all__ = ["Error", "NotFoundError", "PermissionDeniedError", "FormatError", "SchemaMismatchError",
           "BufferExistsError", "NotPublishedError", "NotLiveError", "MissingPackageError"]


class Error(Exception):
    """Base of all cbuf errors. `code` is the runtime's error code name (e.g. "bad_magic"), `path` the buffer."""

    def __init__(self, message: str, code: str = "", path: str = ""):
        super().__init__(message)
        self.code = code
        self.path = path


class NotFoundError(Error, FileNotFoundError):
    """No buffer at that name or path."""


class PermissionDeniedError(Error, PermissionError):
    """The OS refused access; consumers need read permission on the file."""


class FormatError(Error):
    """Not a cbuf buffer, a damaged one, or a format version this reader does not know."""


class NotPublishedError(FormatError):
    """The header was never published: the producer is still creating it, or died while doing so."""


class NotLiveError(Error):
    """live=True: the name held a closed or dead buffer, and no live producer replaced it in time."""


class SchemaMismatchError(Error):
    """The buffer holds rows of another schema than the reader expects."""


class BufferExistsError(Error, FileExistsError):
    """A buffer of that name exists already."""


_BY_CODE = {
    "not_found": NotFoundError,
    "permission": PermissionDeniedError,
    "not_regular_file": FormatError,
    "symlink": FormatError,
    "empty_file": FormatError,
    "truncated": FormatError,
    "bad_magic": FormatError,
    "unsupported_version": FormatError,
    "corrupt_header": FormatError,
    "bad_schema_json": FormatError,
    "not_published": NotPublishedError,
    "not_live": NotLiveError,
    "schema_mismatch": SchemaMismatchError,
    "exists": BufferExistsError,
}


def from_core_args(message: str, code: str, path: str) -> Error:
    """The exception for a runtime error: the class that matches its code (cbuf._core raises these)."""
    return _BY_CODE.get(code, Error)(str(message), code, path)


def from_core(e: Exception) -> Error:
    """Maps a cbuf._core.Error (args: message, code, path) to the matching class."""
    if isinstance(e, Error):
        return e
    return from_core_args(*(tuple(e.args) + ("", "", ""))[:3])


class MissingPackageError(Error, ImportError):
    """An optional package a feature needs is not installed: the message names the extra that brings it."""


class CliError(Exception):
    """A failure of the `cbuf` command: printed as `cbuf <command>: error: <message>`, exit status 1."""


def require(module: str, extra: str, what: str):
    """Imports an optional package, or raises MissingPackageError: one line saying which extra provides it."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        package = {"foxglove": "foxglove-sdk", "zenoh": "eclipse-zenoh"}.get(module.split(".")[0], module)
        need = "needs" if not what.endswith("s") else "need"
        raise MissingPackageError(f"{what} {need} {package}: pip install 'cbuf[{extra}]' (or pip install {package})",
                                  "missing_package") from None
