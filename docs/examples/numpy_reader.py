import json, mmap, os, re, stat, struct, sys, time
import numpy as np

BASE = {"bool": "?", "int8": "<i1", "int16": "<i2", "int32": "<i4", "int64": "<i8", "uint8": "<u1",
        "uint16": "<u2", "uint32": "<u4", "uint64": "<u8", "float32": "<f4", "float64": "<f8",
        "timestamp_ns": "<i8"}
TYPE = re.compile(r"([a-z0-9_]+)(?:\[([1-9][0-9]{0,4})\])?")  # section 7's grammar: no sign, no leading 0
LIMIT = 2**63 - 2                                      # section 1: the index limit

def column_format(t):
    m = TYPE.fullmatch(t) if isinstance(t, str) else None
    if not m or (m[1] not in BASE and not (m[1] == "string" and m[2])) or (m[2] and int(m[2]) > 65536):
        raise ValueError(f"bad column type {t!r}")
    if m[1] == "string":
        return "S" + m[2]
    return (BASE[m[1]], (int(m[2]),)) if m[2] else BASE[m[1]]

def schema_of(raw):                                    # section 3, step 7
    if b"\0" in raw or raw.startswith(b"\xef\xbb\xbf"):
        raise ValueError("schema holds a NUL or a byte-order mark")
    text, depth, top, in_str, esc = raw.decode("utf-8"), 0, 0, False, False
    for ch in text:                                    # nesting depth, brackets inside strings not counted
        if in_str:
            esc, in_str = (False, in_str) if esc else (ch == "\\", ch != '"')
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            top = max(top, depth)
        elif ch in "]}":
            depth -= 1
    if top > 32:
        raise ValueError("schema nests deeper than 32")
    def no_twice(pairs):
        if len({k for k, _ in pairs}) != len(pairs):
            raise ValueError("a key twice in one object")
        return dict(pairs)
    def no_constant(name):
        raise ValueError(f"{name} is not JSON")
    schema = json.loads(text, object_pairs_hook=no_twice, parse_constant=no_constant)
    json.dumps(schema, ensure_ascii=False).encode("utf-8")  # a lone surrogate (\ud800) cannot be encoded
    if not isinstance(schema, dict) or not isinstance(schema.get("columns"), list):
        raise ValueError("schema is not an object with a list of columns")
    return schema

def read_latest(path, k, attach_timeout=1.0):
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # step 1: no symlink, a FIFO never blocks
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path}: not a regular file")
        m = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)  # steps 2-3 (an empty file cannot be mapped: an error)
    finally:
        os.close(fd)
    deadline = time.monotonic() + attach_timeout
    while len(m) >= 512 and m[0:8] == bytes(8) and time.monotonic() < deadline:
        time.sleep(0.001)                              # step 4: not published yet - poll, bounded
    if len(m) < 512 or m[0:8] != b"CBUFRING":
        raise ValueError(f"{path}: not a published cbuf file")
    major, minor, header_size = struct.unpack_from("<HHI", m, 8)
    if major != 1:                                     # step 5
        raise ValueError(f"{path}: format {major}.{minor} is not readable here")
    file_size, data_off, cap, slot, row, s_off, s_len = struct.unpack_from("<QQQIIQQ", m, 16)
    base, page = struct.unpack_from("<QQ", m, 72)
    if not (512 <= header_size <= len(m) and file_size <= len(m) and 1 <= cap <= 2**40  # step 6
            and 1 <= row <= 2**24 and slot == (8 + row + 7) // 8 * 8 and base <= LIMIT and page >= 4096
            and page & (page - 1) == 0 and data_off % page == 0 and data_off + cap * slot <= file_size
            and s_len <= 2**20 and header_size <= s_off and s_off + s_len <= data_off):
        raise ValueError(f"{path}: inconsistent header")  # Python integers cannot overflow
    schema = schema_of(bytes(m[s_off:s_off + s_len]))
    cols = schema["columns"]
    formats = [column_format(c.get("type")) for c in cols]
    dtype = np.dtype({"names": [c["name"] for c in cols], "formats": formats,  # numpy refuses a name twice
                      "offsets": [c["offset"] for c in cols], "itemsize": row})  # ... and a column past the row
    slots = np.frombuffer(m, np.uint8, cap * slot, data_off).reshape(cap, slot)
    for attempt in range(64):                          # section 6, "Latest row": retry a bounded number of times
        head = struct.unpack_from("<Q", m, 256)[0]
        if not base <= head <= LIMIT:
            raise ValueError(f"{path}: corrupt header (head {head})")
        lo = head - cap if head - base > cap else base
        s1 = slots[:, :8].copy().view("<u8")[:, 0]     # section 5, R1 for every slot at once,
        data = slots[:, 8:8 + row].copy()              # R3: one copy of the ring (fast enough for a ring
        s2 = slots[:, :8].copy().view("<u8")[:, 0]     # R4   that a C++ producer laps every few microseconds)
        valid = lambda n: s1[n % cap] == s2[n % cap] == 2 * n + 2  # noqa: E731  (R5)
        end = head
        while end > lo and s1[(end - 1) % cap] == 2 * (end - 1) + 3:
            end -= 1                                   # skipped rows are not rows: the newest one written
        indices = []
        for n in range(end - 1, max(lo, end - k) - 1, -1):  # newest first, stop at the first row that is not
            if not valid(n):                           # committed, was overwritten, or changed during the copy
                break
            indices.append(n)
        if indices or end == lo:                       # a run of rows, or none written: done
            break                                      # (else the newest row was overwritten meanwhile: retry)
    indices.reverse()                                  # oldest first, consecutive
    rows = data[[n % cap for n in indices]] if indices else np.zeros((0, row), np.uint8)
    return indices, np.ascontiguousarray(rows).view(dtype).reshape(-1)

if __name__ == "__main__":
    idx, rows = read_latest(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5)
    for i, r in zip(idx, rows):
        print(i, r)
