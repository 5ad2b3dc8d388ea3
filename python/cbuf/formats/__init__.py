"""Recording formats: one module per format, found by the output's suffix through FORMATS - nothing else
chooses by suffix. Each module has SUFFIX, WHAT, require() (its optional packages, or one line naming the
extra), a Writer (common.Writer: append, lost, restart, idle, finish, abort; MULTI if it holds several buffers)
and load(path) -> [common.Stored], one per buffer in the file. What they share is in common.py; split sets
(numbered segments of one recording) in split.py.
"""
import importlib
import os
from pathlib import Path

from .common import (BATCH, Output, Recording, RecordingError, Stored, Stream, Writer, bad, checked, concat_rows,
                     make_meta, raw, reading, to_rows)

FORMATS = {".npy": "npy", ".csv": "csv", ".parquet": "parquet", ".h5": "h5", ".mcap": "mcap"}
FORMAT_LIST = ".npy, .csv, .parquet, .h5 or .mcap"

__all__ = ["BATCH", "FORMATS", "Output", "Recording", "RecordingError", "Stored", "Stream", "Writer", "bad",
           "check_writable", "checked", "concat_rows", "format_of", "load_file", "make_meta", "open_writer", "raw",
           "reading", "to_rows"]


def format_of(path: Path, verb: str = "record"):
    """The module of the format `path`'s suffix names, or RecordingError listing the formats."""
    name = FORMATS.get(path.suffix)
    if name is None:
        what = "replay reads" if verb == "replay" else "record writes"
        raise RecordingError(f"{path}: unknown format {path.suffix!r}; {what} {FORMAT_LIST}")
    return importlib.import_module(f".{name}", __name__)


def check_writable(out: Path, force: bool, buffers: int = 1) -> None:
    """Refuses, before recording starts, an output that cannot or should not be written."""
    fmt = format_of(out)
    fmt.require()
    if buffers > 1 and not fmt.Writer.MULTI:
        raise RecordingError(f"{out}: a {fmt.WHAT} recording holds one buffer; record several buffers to .h5 or "
                             ".mcap, or each to its own file")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise RecordingError(f"{out}: cannot write it: directory {folder} does not exist")
    if out.exists() and not force:
        raise RecordingError(f"{out}: exists already; choose another name, or use --force to overwrite it")
    partial = Output(out).tmp
    if partial.exists() and not force:
        raise RecordingError(f"{out}: {partial.name} is there, the partial file of a recording that was stopped "
                             "before it ended; rename it to keep it, or use --force to overwrite it")
    if not os.access(folder, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise RecordingError(f"{out}: cannot write it: permission denied")


def open_writer(out: Path, streams: list, **options) -> Writer:
    """The writer of `out`'s format, writing `streams` (common.Stream) to its partial file."""
    return format_of(out).Writer(Output(out), streams, options)


def load_file(path: Path) -> list:
    """The buffers one recording file holds ([common.Stored]); any damage is one RecordingError naming it."""
    if not path.exists():
        raise RecordingError(f"{path}: no such file")
    fmt = format_of(path, "replay")
    with reading(path):
        return fmt.load(path)
