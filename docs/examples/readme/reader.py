"""The README's Python example as a script (README.md quotes it; tests/python/test_docs.py runs it, with
CBUF_DIR set, on the buffer main.cpp leaves behind)."""
import cbuf

total = 0
with cbuf.open("sensors") as r:              # dtype built from the schema stored in the file
    print(r.latest())                        # newest row, a validated copy
    recent = r.last(1000)                    # NumPy structured array, oldest first
    while r.wait(timeout=1.0):               # blocks on a futex; Ctrl-C interrupts it
        new = r.read_new()                   # new.rows, new.lost, new.lost_range
        total += len(new.rows)
        if r.state != "live" and r.cursor == r.head:
            break
print(f"{len(recent)} recent row(s), {total} new, channel[0] = {recent['channel'][-1][0]}")
