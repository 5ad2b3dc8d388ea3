"""The cbuf exception hierarchy. Every error names the path and what to do; `code` is the runtime's code.

The classes the runtime raises are created by the binding (cbuf._core, python/core/errors.cpp) and re-exported
here under their documented names; the ones below them belong to the Python package. Every error the package
raises derives from Error.
"""
from ._core import (BufferExistsError, Error, FormatError, NotFoundError, NotLiveError, NotPublishedError,
                    PermissionDeniedError, SchemaMismatchError)

__all__ = ["Error", "NotFoundError", "PermissionDeniedError", "FormatError", "SchemaMismatchError",
           "BufferExistsError", "NotPublishedError", "NotLiveError", "MissingPackageError", "require"]


class MissingPackageError(Error, ImportError):
    """An optional package a feature needs is not installed: the message names the extra that brings it."""


# The PyPI name of an optional package where it differs from its import name.
_PYPI_NAME = {"foxglove": "foxglove-sdk", "zenoh": "eclipse-zenoh"}


def require(module: str, extra: str, what: str):
    """Imports an optional package, or raises MissingPackageError: one line saying which extra provides it."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        package = _PYPI_NAME.get(module.split(".")[0], module)
        need = "needs" if not what.endswith("s") else "need"
        raise MissingPackageError(f"{what} {need} {package}: pip install 'cbuf[{extra}]' (or pip install {package})",
                                  "missing_package") from None
