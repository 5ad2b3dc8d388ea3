"""The one type table: schema type -> size, alignment, C++ type, NumPy format."""
from dataclasses import dataclass

MAX_ARRAY_LENGTH = 65536   # elements in a T[N] column
MAX_STRING_LENGTH = 65536  # bytes in a string[N] column
MAX_ROW_SIZE = 1 << 24     # bytes per row: the runtime's kMaxRowSize
MAX_CAPACITY = 1 << 40     # rows: the runtime's kMaxCapacity


@dataclass(frozen=True)
class ScalarType:
    name: str
    size: int
    cpp: str
    numpy: str

    @property
    def align(self) -> int:
        return self.size


SCALARS: dict[str, ScalarType] = {t.name: t for t in (
    ScalarType("bool", 1, "bool", "?"),
    ScalarType("int8", 1, "std::int8_t", "<i1"),
    ScalarType("int16", 2, "std::int16_t", "<i2"),
    ScalarType("int32", 4, "std::int32_t", "<i4"),
    ScalarType("int64", 8, "std::int64_t", "<i8"),
    ScalarType("uint8", 1, "std::uint8_t", "<u1"),
    ScalarType("uint16", 2, "std::uint16_t", "<u2"),
    ScalarType("uint32", 4, "std::uint32_t", "<u4"),
    ScalarType("uint64", 8, "std::uint64_t", "<u8"),
    ScalarType("float32", 4, "float", "<f4"),
    ScalarType("float64", 8, "double", "<f8"),
    ScalarType("timestamp_ns", 8, "std::int64_t", "<i8"),  # ns since the Unix epoch
)}

TYPE_NAMES: tuple[str, ...] = tuple(SCALARS) + ("string",)
