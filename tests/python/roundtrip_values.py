"""The deterministic test value of column k, element j, in row i - mirrors tests/helpers/roundtrip_values.hpp exactly."""
import numpy as np


def scalar_value(kind: str, s: int):
    if kind == "bool":
        return s % 2 == 1
    if kind.startswith("float"):
        t = np.float32 if kind == "float32" else np.float64
        info = np.finfo(t)
        return [t(np.nan), t(np.inf), t(-np.inf), t(-0.0), info.smallest_subnormal, info.max, t(1.5 * s)][s % 7]
    if kind.startswith("int") or kind == "timestamp_ns":
        info = np.iinfo(np.int64 if kind == "timestamp_ns" else np.dtype(kind))
        return [info.min, info.max, 0, -1, s % 100][s % 5]
    info = np.iinfo(np.dtype(kind))
    return [0, info.max, 1, s % 100][s % 4]


def string_value(n: int, s: int) -> bytes:
    length = n if s % 3 == 0 else 0 if s % 3 == 1 else min(3, n)
    return bytes(ord("A") + (s + m) % 26 for m in range(length))


def expected_rows(columns, dtype: np.dtype, rows: int) -> np.ndarray:
    """columns: (name, type) pairs in layout order (e.g. a generated module's COLUMNS)."""
    out = np.zeros(rows, dtype=dtype)
    for i in range(rows):
        for k, (name, typ) in enumerate(columns):
            base, _, count = typ.partition("[")
            if base == "string":
                out[i][name] = string_value(int(count[:-1]), i + k)
            elif count:
                out[i][name] = [scalar_value(base, i + k + j) for j in range(int(count[:-1]))]
            else:
                out[i][name] = scalar_value(base, i + k)
    return out
