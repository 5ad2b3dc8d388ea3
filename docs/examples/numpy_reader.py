"""Reads the newest rows of a cbuf buffer with only NumPy (docs/format.md, section 11)."""
import json, mmap, struct, sys
import numpy as np

BASE = {"bool": "?", "int8": "<i1", "int16": "<i2", "int32": "<i4", "int64": "<i8", "uint8": "<u1",
        "uint16": "<u2", "uint32": "<u4", "uint64": "<u8", "float32": "<f4", "float64": "<f8",
        "timestamp_ns": "<i8"}

def column_format(t):
    if t.startswith("string["):
        return "S" + t[7:-1]
    if t.endswith("]"):
        base, n = t[:-1].split("[")
        return (BASE[base], (int(n),))
    return BASE[t]

def read_latest(path, k):
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if m[0:8] != b"CBUFRING":
        raise ValueError(f"{path}: not a published cbuf file")
    major, minor, header_size = struct.unpack_from("<HHI", m, 8)
    if major != 1:
        raise ValueError(f"{path}: format {major}.{minor} is not readable here")
    file_size, data_off, cap, slot, row, s_off, s_len = struct.unpack_from("<QQQIIQQ", m, 16)
    base = struct.unpack_from("<Q", m, 72)[0]
    if not (file_size <= len(m) and data_off + cap * slot <= file_size and s_off + s_len <= data_off):
        raise ValueError(f"{path}: inconsistent header")
    schema = json.loads(bytes(m[s_off:s_off + s_len]))
    dtype = np.dtype({"names": [c["name"] for c in schema["columns"]],
                      "formats": [column_format(c["type"]) for c in schema["columns"]],
                      "offsets": [c["offset"] for c in schema["columns"]],
                      "itemsize": row})
    slots = np.frombuffer(m, np.uint8, cap * slot, data_off).reshape(cap, slot)
    head = struct.unpack_from("<Q", m, 256)[0]
    lo = head - cap if head - base > cap else base
    rows, indices = [], []
    for n in range(max(lo, head - k), head):
        s = slots[n % cap]
        want = (2 * n + 2) % 2**64
        if int(s[:8].view("<u8")[0]) != want:
            continue                                   # not committed yet, or overwritten
        data = s[8:8 + row].copy()
        if int(s[:8].view("<u8")[0]) != want:
            continue                                   # overwritten during the copy: torn, drop it
        rows.append(data)
        indices.append(n)
    return indices, np.array(rows, dtype=np.uint8).reshape(-1, row).view(dtype).reshape(-1)

if __name__ == "__main__":
    idx, rows = read_latest(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5)
    for i, r in zip(idx, rows):
        print(i, r)
