"""Stage 3: the model. Computes every number once - offsets, padding, row size, C++ and NumPy types, the
canonical schema JSON and the fingerprint - in frozen dataclasses. Templates only print these."""
import json
from dataclasses import dataclass

from .errors import SchemaError
from .types import MAX_ROW_SIZE, SCALARS
from .validate import parse_type

FNV_OFFSET = 0xcbf29ce484222325
FNV_PRIME = 0x100000001b3


@dataclass(frozen=True)
class Column:
    name: str
    type: str            # canonical spelling, e.g. "float32[3]"
    base: str            # "float32", "string", ...
    count: int | None    # array length / string capacity, None for a scalar
    offset: int
    size: int
    align: int
    cpp_type: str
    numpy_literal: str   # the field's NumPy format as a Python literal: "'<f4'", "'S16'", "('<f4', (3,))"
    unit: str
    doc: str

    @property
    def is_array(self) -> bool:
        return self.count is not None and self.base != "string"

    @property
    def is_string(self) -> bool:
        return self.base == "string"


@dataclass(frozen=True)
class Model:
    source: str                  # the schema file's name (no directory)
    name: str                    # schema name = C++ namespace = Python module
    namespace: str               # C++ namespace (defaults to name)
    description: str
    capacity: int
    columns: tuple[Column, ...]
    row_size: int
    row_align: int
    layout_string: str
    fingerprint: int
    canonical_json: str          # embedded in every buffer file


def fnv1a64(data: bytes) -> int:
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


def _column(col: dict, offset: int) -> tuple[Column, int]:
    base, count = parse_type(col["type"])
    if base == "string":
        size, align, cpp, np_fmt = count, 1, f"std::array<char, {count}>", f"'S{count}'"
        canonical = f"string[{count}]"
    else:
        t = SCALARS[base]
        n = count or 1
        size, align = t.size * n, t.align
        cpp = f"std::array<{t.cpp}, {count}>" if count else t.cpp
        np_fmt = f"('{t.numpy}', ({count},))" if count else f"'{t.numpy}'"
        canonical = f"{base}[{count}]" if count else base
    offset = (offset + align - 1) // align * align
    return Column(col["name"], canonical, base, count, offset, size, align, cpp, np_fmt, col.get("unit", ""),
                  col.get("doc", "")), offset + size


def build(file: str, doc: dict, namespace: str | None = None) -> Model:
    columns, end = [], 0
    for col in doc["columns"]:
        c, end = _column(col, end)
        columns.append(c)
    row_align = max(c.align for c in columns)
    row_size = (end + row_align - 1) // row_align * row_align
    if row_size > MAX_ROW_SIZE:
        raise SchemaError(file, "/columns", f"a row is {row_size} bytes, over the {MAX_ROW_SIZE}-byte limit",
                          "use fewer or shorter columns (large arrays belong in several rows)")
    layout = f"cbuf-layout-v1;row_size={row_size};" + "".join(f"{c.name}:{c.type}@{c.offset};" for c in columns)
    canonical = {"name": doc["name"]}
    if "description" in doc:
        canonical["description"] = doc["description"]
    canonical["capacity"] = doc["capacity"]
    canonical["row_size"] = row_size
    canonical["columns"] = [
        {"name": c.name, "type": c.type, "offset": c.offset, **({"unit": c.unit} if c.unit else {}),
         **({"doc": c.doc} if c.doc else {})}
        for c in columns
    ]
    return Model(
        source=file,
        name=doc["name"],
        namespace=namespace or doc["name"],
        description=doc.get("description", ""),
        capacity=doc["capacity"],
        columns=tuple(columns),
        row_size=row_size,
        row_align=row_align,
        layout_string=layout,
        fingerprint=fnv1a64(layout.encode("utf-8")),
        canonical_json=json.dumps(canonical, separators=(",", ":"), ensure_ascii=True),
    )
