"""The README's Python example as a script (README.md quotes it; tests/python/test_docs.py runs it, with
CBUF_DIR set, on the buffer main.cpp leaves behind)."""
import cbuf

total = 0
with cbuf.open("sensors") as r:              # dtype built from the schema stored in the file
    print(r.latest())                        # newest row, a validated copy
    recent = r.last(1000)                    # NumPy structured array, oldest first
    for new in r:                            # batches as they come (a futex wait between them), until
        print(len(new.rows), new.lost)       # the producer is closed and every row read: r.finished
        total += len(new.rows)
print(f"{len(recent)} recent row(s), {total} new, channel[0] = {recent['channel'][-1][0]}")
