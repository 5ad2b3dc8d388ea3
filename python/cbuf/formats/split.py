"""Split recordings: `--split-size` / `--split-duration` write numbered segments (`run_0000.mcap`,
`run_0001.mcap`, ...), each a complete recording of its own that every reader of its format opens alone.
A segment ends between two batches of rows - rows are never split or written twice - once it holds the size
(bytes written; compressed formats count what reached the file) or has run the duration asked for. Each
segment's metadata says which set it belongs to and its number ("segment": {"set": id, "number": k}), so
`cbuf replay` can check a set: segments of another recording, two with the same number or overlapping rows
are refused, and a missing segment is reported as the exact rows it held (its indices between its
neighbours')."""
import re
import time
import uuid
from pathlib import Path

from . import check_writable, open_writer
from .common import RecordingError, Stream


def segment_path(out: Path, number: int) -> Path:
    return out.with_name(f"{out.stem}_{number:04d}{out.suffix}")


def segments_of(out: Path) -> list:
    """The segment files of `out` that exist (run_0000.mcap, ...)."""
    pattern = re.compile(re.escape(out.stem) + r"_[0-9]{4,}" + re.escape(out.suffix) + "$")
    folder = out.parent if str(out.parent) else Path(".")
    return sorted(p for p in folder.iterdir() if pattern.match(p.name)) if folder.is_dir() else []


def check_split_writable(out: Path, force: bool, buffers: int) -> None:
    check_writable(segment_path(out, 0), force, buffers)
    taken = segments_of(out)
    if taken and not force:
        raise RecordingError(f"{taken[0]}: exists already (a segment of an earlier split recording); choose another "
                             "name, or use --force to overwrite its segments")


class SplitWriter:
    """The writer interface (common.Writer) over numbered segments of `out`."""

    def __init__(self, out: Path, streams: list, options: dict, max_bytes=None, max_seconds=None, force=False):
        self.out, self.streams, self.options = out, streams, options
        self.max_bytes, self.max_seconds, self.force = max_bytes, max_seconds, force
        self.set_id, self.number, self.done = uuid.uuid4().hex, 0, []
        self.epochs = [s.meta.get("epoch", 0) for s in streams]
        self.w = self._open()

    def _open(self):
        path = segment_path(self.out, self.number)
        if self.number:
            check_writable(path, self.force, len(self.streams))
        seg = {"set": self.set_id, "number": self.number}
        self.started = time.monotonic()
        return open_writer(path, [Stream(s.name, {**s.meta, "segment": seg, "epoch": e}, s.dtype, s.columns)
                                  for s, e in zip(self.streams, self.epochs)], **self.options)

    def _writer(self):
        """The open segment; the next one is opened when something comes for it (no empty segments)."""
        if self.w is None:
            self.number += 1
            self.w = self._open()
        return self.w

    def _rotate_if_due(self) -> None:
        w = self.w
        if w is None or not any(t.rows for t in w.tallies):
            return
        if (self.max_bytes and w.size() >= self.max_bytes) or \
                (self.max_seconds and time.monotonic() - self.started >= self.max_seconds):
            self.epochs = [t.epoch for t in w.tallies]
            w.finish()
            self.done.append(w.out.out)
            self.w = None

    def append(self, k, first, rows) -> None:
        self._writer().append(k, first, rows)
        self._rotate_if_due()

    def lost(self, k, start, stop) -> None:
        self._writer().lost(k, start, stop)

    def restart(self, k, info, epoch) -> None:
        self._writer().restart(k, info, epoch)

    def idle(self) -> None:
        if self.w is not None:
            self.w.idle()
            self._rotate_if_due()

    def finish(self) -> list:
        if self.w is None:
            return []
        metas = self.w.finish()
        self.done.append(self.w.out.out)
        return metas

    def abort(self) -> None:
        if self.w is not None:
            self.w.abort()  # the completed segments stay: each is a whole recording
