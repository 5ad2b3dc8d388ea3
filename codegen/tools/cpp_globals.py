"""Lists the identifiers the cbuf runtime's headers put in the global namespace (C library and POSIX
functions, types and struct tags), one per line: a schema name is a C++ namespace at global scope, so it must
not be one of them (`namespace stat {}` next to `int stat(...)` does not compile).

    python codegen/tools/cpp_globals.py > codegen/cbuf_codegen/cpp_globals.txt   (./dev.sh goldens runs it)

tests/python/test_codegen.py re-runs it and fails when the headers declare a name the checked-in list lacks.
"""
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def global_names(cxx: str = "c++") -> list:
    text = subprocess.run([cxx, "-std=c++20", "-E", "-P", "-x", "c++", "-I", str(REPO / "runtime" / "include"), "-"],
                          input="#include <cbuf/cbuf.hpp>\n", capture_output=True, text=True, check=True).stdout
    blocks, i = [], 0
    while (j := text.find('extern "C" {', i)) >= 0:  # glibc wraps its declarations in extern "C" blocks
        depth, k = 0, text.index("{", j)
        start = k
        while True:
            depth += {"{": 1, "}": -1}.get(text[k], 0)
            if depth == 0:
                break
            k += 1
        blocks.append(text[start + 1:k])
        i = k
    c = "\n".join(blocks)
    names = set(re.findall(r"\b([A-Za-z_]\w*)\s*\([^()]*(?:\([^()]*\)[^()]*)*\)\s*(?:noexcept\s*\(\s*true\s*\)|"
                           r"throw\s*\(\s*\))?\s*(?:__attribute__\s*\(\(.*?\)\)\s*)*;", c))
    names |= set(re.findall(r"\bstruct\s+([A-Za-z_]\w*)", c))
    names |= set(re.findall(r"typedef\b[^;{]*?\b([A-Za-z_]\w*)\s*;", text))  # typedefs at any depth: cheap, safe
    names.add("main")
    return sorted(n for n in names if not n.startswith("_"))


if __name__ == "__main__":
    sys.stdout.write("".join(n + "\n" for n in global_names()))
