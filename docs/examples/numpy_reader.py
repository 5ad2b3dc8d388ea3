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
    with open(path, "rb") as f:                        # section 3: a regular file, mapped read-only
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if len(m) < 512 or m[0:8] != b"CBUFRING":
        raise ValueError(f"{path}: not a published cbuf file")
    major, minor, header_size = struct.unpack_from("<HHI", m, 8)
    if major != 1:
        raise ValueError(f"{path}: format {major}.{minor} is not readable here")
    file_size, data_off, cap, slot, row, s_off, s_len = struct.unpack_from("<QQQIIQQ", m, 16)
    base, page = struct.unpack_from("<QQ", m, 72)
    if not (512 <= header_size <= len(m) and file_size <= len(m) and 1 <= cap <= 2**40
            and 1 <= row <= 2**24 and slot % 8 == 0 and slot >= 8 + row and page >= 4096
            and page & (page - 1) == 0 and data_off % page == 0 and data_off + cap * slot <= file_size
            and s_len <= 2**20 and header_size <= s_off and s_off + s_len <= data_off):
        raise ValueError(f"{path}: inconsistent header")  # Python integers cannot overflow
    schema = json.loads(bytes(m[s_off:s_off + s_len]))
    dtype = np.dtype({"names": [c["name"] for c in schema["columns"]],
                      "formats": [column_format(c["type"]) for c in schema["columns"]],
                      "offsets": [c["offset"] for c in schema["columns"]],
                      "itemsize": row})
    slots = np.frombuffer(m, np.uint8, cap * slot, data_off).reshape(cap, slot)
    head = struct.unpack_from("<Q", m, 256)[0]
    lo = head - cap if head - base > cap else base
    rows, indices = [], []
    for n in range(head - 1, max(lo, head - k) - 1, -1):  # section 6: newest first ...
        s = slots[n % cap]
        want = (2 * n + 2) % 2**64
        if int(s[:8].view("<u8")[0]) != want:
            break                                      # ... stop at the first row not committed or overwritten
        data = s[8:8 + row].copy()
        if int(s[:8].view("<u8")[0]) != want:
            break                                      # overwritten during the copy (torn): stop here too
        rows.append(data)
        indices.append(n)
    rows.reverse()
    indices.reverse()                                  # oldest first, consecutive
    return indices, np.array(rows, dtype=np.uint8).reshape(-1, row).view(dtype).reshape(-1)

if __name__ == "__main__":
    idx, rows = read_latest(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5)
    for i, r in zip(idx, rows):
        print(i, r)
