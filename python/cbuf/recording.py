"""Recordings: what `cbuf record` writes and `cbuf replay` reads - .npy (+ a .cbuf.json file), .csv, .parquet,
.h5 (HDF5) and .mcap (MCAP), each carrying the schema with the data. One module per format (cbuf.formats); this
module is what users and the CLI call.

Every format streams: rows go to the file as they come, memory stays bounded however long a recording runs.
Every format is written under a hidden partial name beside the output (`.run.h5.partial.h5`) and renamed into
place only when it is complete: a user's existing file is never touched before its replacement is whole, and
a failure (a full or read-only file system) removes the partial file and is one RecordingError naming the
user's file. Formats that store rows as bytes (.npy, .h5, MCAP cdr) hold exactly the buffer's bytes, padding
included; .csv and .parquet hold the values.

A recording is untrusted input like a buffer file: every way it can be damaged ends in one RecordingError that
names the file and says what is wrong, before anything is created. load() checks a whole recording in one
streaming pass with bounded memory (batches of BATCH rows; sizes the file declares are checked against what it
holds), and Recording.batches() reads it again, in the order it was recorded. The schema inside is checked by
the runtime (`_core.check_schema`, the check every reader relies on) and the row dtype built from its result.
"""
from pathlib import Path
from typing import Iterable, Union

import numpy as np

from . import _core
from .formats import (BATCH, FORMAT_LIST, FORMATS, Recording, RecordingError, Stream, check_writable, checked,
                      concat_rows, load_file, make_meta, open_writer, reading)
from .formats.common import implied_indices

__all__ = ["BATCH", "FORMATS", "Recording", "RecordingError", "check_writable", "checked", "concat_rows", "load",
           "load_all", "make_meta", "open_writer", "save"]


def save(out: Path, data: np.ndarray, meta: dict, **options) -> None:
    """Writes a whole recording of `data` (rows of the schema in `meta`) through the format's streaming writer."""
    _, columns, dtype = checked(meta, str(out))
    w = open_writer(Path(out), [Stream(Path(str(meta.get("source", "rows"))).name or "rows", meta, dtype, columns)],
                    **options)
    try:
        for at in range(0, len(data), BATCH):
            w.append(0, int(meta.get("first_index", 0)) + at, data[at:at + BATCH])
    except BaseException:
        w.abort()
        raise
    w.finish()


def _checked(stored, path: Path) -> Recording:
    """A Recording of one stored buffer, after the checking pass: every row decoded once, nothing kept."""
    schema, columns, dtype = checked(stored.meta, str(path) if path.suffix != ".npy" else f"{path}.cbuf.json")
    indexed = implied_indices(stored.batches, stored.meta)
    rows, first, last, rising = 0, None, -1, True
    with reading(path):
        for b, idx in indexed():
            rows += len(b)
            if not rising or not len(b):
                continue
            # The recorded indices are kept only while they rise: a recording across a producer restart (the
            # indices start over) is replayed with the rows renumbered from the first.
            if idx is None or int(idx[0]) <= last or (len(idx) > 1 and (idx[1:] <= idx[:-1]).any()) \
                    or int(idx[-1]) >= _core.INDEX_LIMIT:
                rising = False
                continue
            first = int(idx[0]) if first is None else first
            last = int(idx[-1])
    first, last = (first, last) if rising and first is not None else (None, None)
    return Recording(stored.meta, schema, columns, dtype, rows, indexed, first, last, stored.name)


def load(path: Union[str, Path]) -> Recording:
    """Opens and checks a recording of one buffer (the first, in a file of several); any damage is a
    RecordingError naming the file. The returned Recording's batches() reads the rows again."""
    recs = load_all([Path(path)])
    return recs[0]


def _files(paths: Iterable[Path]) -> list:
    """The recording files named: a directory stands for the recordings in it (not the hidden partial files)."""
    out = []
    for p in paths:
        if p.is_dir():
            found = sorted(x for x in p.iterdir() if x.suffix in FORMATS and not x.name.startswith("."))
            if not found:
                raise RecordingError(f"{p}: holds no recording ({FORMAT_LIST})")
            out.extend(found)
        else:
            out.append(p)
    return out


def load_all(paths: Iterable[Union[str, Path]]) -> list:
    """Every buffer of one recording - a file (several buffers in .h5/.mcap), or the segments of a split set
    (files or their directory), checked as a whole: each buffer's segments become one Recording whose rows
    continue across them. Segments of another recording, two with the same number, or overlapping rows are
    refused; a missing segment is in the Recording's `notes` as the rows it held, which replay reports lost."""
    files = _files([Path(p) for p in paths])
    per_file = []
    for f in files:
        recs = [_checked(s, f) for s in load_file(f)]
        if not recs or not any(r.rows for r in recs):
            raise RecordingError(f"{f}: holds no rows; nothing to replay")
        per_file.append((f, recs))
    if len(per_file) == 1 and "segment" not in per_file[0][1][0].meta:
        return per_file[0][1]
    return _joined(per_file)


def _segment(f: Path, recs: list) -> tuple:
    seg = recs[0].meta.get("segment")
    if not isinstance(seg, dict) or not isinstance(seg.get("set"), str) or type(seg.get("number")) is not int \
            or seg["number"] < 0 or any(r.meta.get("segment") != seg for r in recs):
        raise RecordingError(f"{f}: not a segment of a split recording (its metadata has no valid 'segment'); "
                             "replay it alone")
    return seg["set"], seg["number"]


def _joined(per_file: list) -> list:
    """The buffers of a split set, each joined across its segments."""
    segs = sorted(((*_segment(f, recs), f, recs) for f, recs in per_file), key=lambda s: s[1])
    first_set, first_file = segs[0][0], segs[0][2]
    for set_id, number, f, recs in segs:
        if set_id != first_set:
            raise RecordingError(f"{f}: a segment of another recording than {first_file.name} (split set "
                                 f"{set_id[:8]}, not {first_set[:8]}); replay each recording on its own")
        if [(r.name, r.meta["fingerprint"]) for r in recs] != [(r.name, r.meta["fingerprint"]) for r in segs[0][3]]:
            raise RecordingError(f"{f}: holds other buffers or schemas than {first_file.name}, though both are "
                                 "segments of one recording; is one of them changed?")
    for a, b in zip(segs, segs[1:]):
        if a[1] == b[1]:
            raise RecordingError(f"{b[2]}: segment {b[1]} twice ({a[2].name} has the same number); keep one")
    out = []
    for k in range(len(segs[0][3])):
        parts = [(number, f, recs[k]) for _, number, f, recs in segs]
        notes, keep = [], all(r.first_index is not None for _, _, r in parts)
        if parts[0][0] != 0:
            notes.append(f"segment 0 to {parts[0][0] - 1} missing before {parts[0][1].name}: the rows they held "
                         "are not known")
        for (na, fa, ra), (nb, fb, rb) in zip(parts, parts[1:]):
            if keep and rb.first_index <= ra.last_index:
                raise RecordingError(f"{fb}: its rows {rb.first_index}..{min(ra.last_index, rb.last_index)} are in "
                                     f"{fa.name} too (the segments overlap); is one of them from another run?")
            if nb != na + 1:
                held = f"rows {ra.last_index + 1}..{rb.first_index - 1} ({rb.first_index - ra.last_index - 1} " \
                       "rows) lost" if keep else "the rows it held are lost (their number is not known: the " \
                       "indices restart inside the set)"
                missing = f"segment {na + 1}" if nb == na + 2 else f"segments {na + 1} to {nb - 1}"
                notes.append(f"{missing} of {fa.name}'s set missing between {fa.name} and {fb.name}: {held}")
        recs = [r for _, _, r in parts]

        def indexed(recs=recs, keep=keep):
            for r in recs:
                for rows, idx in r.indexed():
                    yield rows, (idx if keep else None)
        r0 = recs[0]
        meta = {**r0.meta, "rows": sum(r.rows for r in recs), "lost": sum(int(r.meta.get("lost", 0)) for r in recs)}
        out.append(Recording(meta, r0.schema, r0.columns, r0.dtype, meta["rows"], indexed,
                             r0.first_index if keep else None, recs[-1].last_index if keep else None, r0.name,
                             tuple(notes)))
    return out
