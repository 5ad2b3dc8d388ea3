"""Stage 1: read a schema file into plain JSON values."""
import json
from pathlib import Path

from .errors import SchemaError

MAX_SCHEMA_BYTES = 1 << 20


def load(path: str | Path) -> tuple[str, object]:
    """Returns (display name of the file, parsed JSON). Raises SchemaError for unreadable or non-JSON input."""
    p = Path(path)
    name = p.name
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise SchemaError(str(path), "", "no such file", "check the path of the schema file") from None
    except OSError as e:
        raise SchemaError(str(path), "", f"cannot read the file ({e.strerror})", "check its permissions") from None
    if len(data) > MAX_SCHEMA_BYTES:
        raise SchemaError(name, "", f"the file is {len(data)} bytes, over the 1 MiB limit",
                          "a schema describes columns, not data: shorten it")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SchemaError(name, "", f"not UTF-8 text (byte {e.start})", "save the file as UTF-8") from None
    try:
        return name, json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise SchemaError(name, "", f"not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}",
                          "correct the JSON syntax there") from None
    except ValueError as e:
        raise SchemaError(name, "", str(e), "use only standard JSON numbers") from None


def _reject_constant(name: str):
    raise ValueError(f"not valid JSON: {name} is not a JSON value")
