"""What every recording format shares (recording.py and the format modules _hdf5.py and _mcap.py, which it
imports): the error, the batch size, and the checks of text read from a file."""
import json

from .errors import Error

BATCH = 4096  # rows a loader hands over at a time: the memory a replay needs is a few batches, whatever the file


class RecordingError(Error):
    """A recording that cannot be read or written: the message names the file."""


def bad(path, what: str) -> RecordingError:
    return RecordingError(f"{path}: {what}; is it a recording made by cbuf record, complete and unchanged?")


def json_loads(text, path, what: str):
    """json.loads for text from a recording: nesting deep enough to exhaust Python's stack is damage too."""
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError, TypeError) as e:
        reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise bad(path, f"{what} is not valid JSON ({reason})") from None
