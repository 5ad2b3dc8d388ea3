"""The row as OMG IDL, for MCAP's `omgidl` schema encoding with `cdr` messages (what `cbuf record -o x.mcap`
writes and `cbuf foxglove` serves; Foxglove and @foxglove/omgidl-serialization decode it without cbuf).

A message is XCDR1 little-endian: the 4-byte encapsulation header 00 01 00 00, then the row's index as a uint64,
then the row's bytes exactly as they are in the ring. XCDR1 aligns each value to its own size counted from the
byte after the header, and every cbuf column sits at an offset that is a multiple of its alignment (at most 8),
so the ring's layout *is* the CDR layout: nothing is encoded per field. Where a schema leaves a gap wider than
alignment needs (explicit offsets), an `octet _padN[k]` field names it; the row's tail padding follows the
last field and decoders ignore it.

Types: bool -> boolean, intN/uintN -> intN/uintN, float32 -> float, float64 -> double, timestamp_ns -> int64
(ns since the Unix epoch), T[N] -> T name[N], string[N] -> char name[N] (the bytes, NUL-padded). A column
whose name is an IDL keyword (case-insensitively: `string`, `sequence`, `Boolean`...) is written with a `_` at
its end, since Foxglove's IDL parser refuses keywords as names.
"""
from dataclasses import dataclass

from .render import environment
from .validate import parse_type

IDL_TYPES = {"bool": "boolean", "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64",
             "uint8": "uint8", "uint16": "uint16", "uint32": "uint32", "uint64": "uint64", "float32": "float",
             "float64": "double", "timestamp_ns": "int64", "string": "char"}
_SIZES = {"bool": 1, "int8": 1, "int16": 2, "int32": 4, "int64": 8, "uint8": 1, "uint16": 2, "uint32": 4,
          "uint64": 8, "float32": 4, "float64": 8, "timestamp_ns": 8, "string": 1}
MODULE = "cbuf"          # the IDL module every row struct is in: the MCAP schema name is cbuf::<schema name>
INDEX_FIELD = "row_index"  # the uint64 before the row's bytes

# OMG IDL 4.2 keywords (§7.2.4) and the IDL 4 integer type names: Foxglove's parser refuses them as field names.
IDL_KEYWORDS = frozenset(w.lower() for w in """
abstract any alias attribute bitfield bitmask bitset boolean case char component connector const consumes context
custom default double exception emits enum eventtype factory FALSE finder fixed float getraises getter home import
in inout interface local long manages map mirrorport module multiple native Object octet oneway out primarykey
private port porttype provides public publishes raises readonly setraises setter sequence short string struct
supports switch TRUE truncatable typedef typeid typename typeprefix unsigned union uses ValueBase valuetype void
wchar wstring int8 uint8 int16 int32 int64 uint16 uint32 uint64
""".split())


@dataclass(frozen=True)
class IdlField:
    name: str
    type: str
    dims: str    # "" or "[N]"
    unit: str
    doc: str


@dataclass(frozen=True)
class IdlRow:
    name: str          # the struct's name (the schema name, escaped)
    schema_name: str   # the MCAP schema name: cbuf::<name>
    row_size: int
    fingerprint: int
    description: str
    fields: tuple


def _escape(name: str, taken: set) -> str:
    out = name
    while out.lower() in IDL_KEYWORDS or (out != name and out in taken):
        out += "_"
    return out


def row(canonical: dict, fingerprint: int) -> IdlRow:
    """The IDL row of a canonical schema (the JSON a buffer carries: name, row_size and columns with their
    type and offset - the generator's model and the runtime's validated schema both have that form)."""
    names = {c["name"] for c in canonical["columns"]}
    fields, at, pads = [IdlField(INDEX_FIELD, "uint64", "", "", "the row's index in the cbuf buffer")], 0, 0
    for c in canonical["columns"]:
        base, count = parse_type(c["type"])
        align = _SIZES[base]
        natural = (at + align - 1) // align * align
        if c["offset"] != natural:  # a wider gap than alignment asks for: name it
            fields.append(IdlField(f"_pad{pads}", "octet", f"[{c['offset'] - at}]", "", "padding"))
            pads += 1
        fields.append(IdlField(_escape(c["name"], names), IDL_TYPES[base], f"[{count}]" if count else "",
                               str(c.get("unit", "")), str(c.get("doc", ""))))
        at = c["offset"] + _SIZES[base] * (count or 1)
    name = _escape(str(canonical["name"]), set())
    return IdlRow(name, f"{MODULE}::{name}", int(canonical["row_size"]), fingerprint,
                  str(canonical.get("description", "")), tuple(fields))


def text(canonical: dict, fingerprint: int, version: str) -> str:
    """The IDL text of a canonical schema (template omgidl.idl.j2)."""
    return environment().get_template("omgidl.idl.j2").render(idl=row(canonical, fingerprint), version=version,
                                                               module=MODULE)
