#!/usr/bin/env bash
# cbuf developer entry point - the two quick-start commands of README.md:
#   ./dev.sh demo    install what is missing, build, run the demo
#   ./dev.sh test    install what is missing, build, run the whole test suite (plain, ThreadSanitizer,
#                    ASan+UBSan builds); this is exactly what .ci/run runs
#   ./dev.sh setup   only the set-up the two above start with: install what is missing, configure build/
#   ./dev.sh bench   build and run the benchmarks (not part of the tests): one table, raw JSON in bench/results
#   ./dev.sh bench-deps  install the peers the benchmarks compare against (iceoryx, ZeroMQ, Boost, iceoryx2)
#   ./dev.sh instructions [--update]  instructions per row under callgrind vs bench/instructions.json
#   ./dev.sh goldens regenerate generated/ (the checked-in generator output for schema/examples) and the list of
#                    C/C++ global names a schema may not take (codegen/cbuf_codegen/cpp_globals.txt)
# Set CBUF_NO_INSTALL=1 to skip the dependency check.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
JOBS=${CBUF_JOBS:-2}

say() { printf '==> %s\n' "$*"; }

# --- dependencies ---------------------------------------------------------------------------------------
need_apt=()
check_deps() {  # [demo]
  command -v cmake >/dev/null || need_apt+=(cmake)
  command -v ninja >/dev/null || need_apt+=(ninja-build)
  command -v g++ >/dev/null || need_apt+=(g++)
  if [ "${1:-}" != demo ]; then
    command -v clang++ >/dev/null || need_apt+=(clang)  # libFuzzer
    command -v valgrind >/dev/null || need_apt+=(valgrind)  # instruction counts (bench/instructions.py)
    command -v h5dump >/dev/null || need_apt+=(hdf5-tools)   # an HDF5 reader nobody here wrote (test_formats.py)
    command -v npm >/dev/null || need_apt+=(nodejs npm)      # the npm MCAP reader (tests/js)
  fi
  # Python headers for the pybind11 module (Debian's python3 keeps them in python3-dev).
  python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    2>/dev/null || need_apt+=(python3-dev)
  [ -f /usr/include/nlohmann/json.hpp ] || need_apt+=(nlohmann-json3-dev)
  [ -f /usr/include/catch2/catch.hpp ] || [ -f /usr/include/catch2/catch_test_macros.hpp ] || \
    [ -f /usr/local/include/catch2/catch_test_macros.hpp ] || need_apt+=(catch2)
}
# Installs Debian packages, saying which (sudo when not root).
apt_install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  say "installing Debian packages: $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

install_deps() {  # [demo]: only what the demo runs (no npm readers, no test-only tools)
  ensure_python
  [ "${CBUF_NO_INSTALL:-0}" = 1 ] && return 0
  check_deps "${1:-}"
  if [ ${#need_apt[@]} -eq 0 ]; then
    [ "$INSTALLED" = 1 ] || say "dependencies: all present (Debian packages, and Python packages in $VENV)"
  else
    apt_install "${need_apt[@]}"
  fi
  [ "${1:-}" = demo ] || ensure_node_packages
}

# The npm readers the format tests use, pinned by tests/js/package-lock.json, installed beside the Python
# packages in $VENV/js/node_modules (never in the tree). The tests find them through sys.prefix.
ensure_node_packages() {
  local dir="$VENV/js"
  if [ ! -d "$dir/node_modules" ] || ! cmp -s tests/js/package-lock.json "$dir/package-lock.json"; then
    say "installing npm packages into $dir: $(node -e 'console.log(Object.keys(require("./tests/js/package.json").dependencies).join(" "))')"
    INSTALLED=1
    mkdir -p "$dir"
    cp tests/js/package.json tests/js/package-lock.json "$dir/"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}

# Python for the generator and the Python tests: a private virtual environment in .venv (never committed),
# or an existing one named by CBUF_VENV (used as it is when it has everything; the clone test uses this).
VENV="${CBUF_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
INSTALLED=0  # set when this run installed something
PY_PACKAGES=(jinja2 jsonschema numpy pytest mypy pybind11 pandas matplotlib pyarrow h5py mcap foxglove-sdk eclipse-zenoh)
ensure_python() {
  if [ ! -x "$PY" ]; then
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
      rm -rf "$VENV"
      [ "${CBUF_NO_INSTALL:-0}" = 1 ] && { echo "python3 -m venv failed (install python3-venv)" >&2; exit 1; }
      INSTALLED=1
      apt_install python3-venv
      python3 -m venv "$VENV"
    fi
  fi
  local modules=("${PY_PACKAGES[@]/foxglove-sdk/foxglove}")  # the list above, by import name:
  modules=("${modules[@]/eclipse-zenoh/zenoh}")               # foxglove-sdk is foxglove, eclipse-zenoh zenoh
  if ! "$PY" -c "import $(IFS=,; echo "${modules[*]}")" >/dev/null 2>&1; then
    say "installing Python packages into $VENV: ${PY_PACKAGES[*]}"
    INSTALLED=1
    "$PY" -m pip install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
  fi
}

# --- builds ---------------------------------------------------------------------------------------------
configure() {  # dir, extra cmake args...: the one configure line of every build
  local dir=$1; shift
  cmake -S "$ROOT" -B "$dir" -G Ninja -DPython3_EXECUTABLE="$PY" -DCBUF_PYTHON="$PY" "$@" >/dev/null
}
build() { cmake --build "$1" -j "$JOBS"; }
configure_and_build() { configure "$@"; build "$1"; }

PLAIN_BUILD_ARGS=()
plain_build_args() {
  PLAIN_BUILD_ARGS=(-DCBUF_BUILD_PYTHON=ON "-Dpybind11_DIR=$("$PY" -m pybind11 --cmakedir)")
}

# The set-up both quick-start commands start with: what is missing is installed, and the plain build (build/)
# is configured. ./dev.sh setup runs just this (tests/python/test_quickstart.py runs it in a fresh clone).
setup() {  # [demo]
  install_deps "${1:-}"
  plain_build_args
  configure build "${PLAIN_BUILD_ARGS[@]}"
}

cmd_setup() {
  setup
  say "set up: build/ is configured; ./dev.sh demo or ./dev.sh test build and run"
}

cmd_demo() {
  setup demo
  say "building what the demo runs (build/: the demo program, the Python package and its binding)"
  cmake --build build -j "$JOBS" --target cbuf_demo cbuf_python_package _core
  say "running the demo: a C++ producer (restarting half way) and two following C++ consumers; meanwhile cbuf ls, cbuf tail and a Python consumer"
  local name="cbuf_demo_$$"
  export PYTHONPATH="$ROOT/build/python:$ROOT/codegen:$ROOT/build/examples/python"
  ./build/examples/cbuf_demo 4 "$name" &
  local demo=$!
  sleep 0.7
  echo "\$ cbuf ls";                              "$PY" -m cbuf.cli ls | grep -E "^NAME|^$name"
  echo "\$ cbuf tail $name -n 3 --columns seq,status"; "$PY" -m cbuf.cli tail "$name" -n 3 --columns seq,status
  "$PY" examples/demo_reader.py "$name" 2
  wait "$demo"
}

cmd_test() {
  setup
  local failed=0
  say "plain build (build/): tests (C++ and Python)"
  build build
  (cd build && ctest -j "$JOBS" --output-on-failure) || failed=1
  say "ThreadSanitizer build (build-tsan/): tests"
  configure_and_build build-tsan -DCMAKE_BUILD_TYPE=Debug -DCBUF_SANITIZE=thread -DCBUF_BUILD_EXAMPLES=OFF
  (cd build-tsan && TSAN_OPTIONS=halt_on_error=1 ctest -j "$JOBS" --output-on-failure) || failed=1
  say "ASan+UBSan build (build-asan/): tests"
  configure_and_build build-asan -DCMAKE_BUILD_TYPE=Debug -DCBUF_SANITIZE=address,undefined -DCBUF_BUILD_EXAMPLES=OFF
  (cd build-asan && ctest -j "$JOBS" --output-on-failure) || failed=1
  local fuzz_s=${CBUF_FUZZ_SECONDS:-15}
  say "fuzzing the attach path, then files changed after attach, ${fuzz_s} s each (build-fuzz/)"
  CXX=clang++ configure_and_build build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCBUF_BUILD_FUZZ=ON \
    -DCBUF_BUILD_TESTS=OFF -DCBUF_BUILD_EXAMPLES=OFF -DCBUF_INSTALL=OFF
  local target
  for target in attach after_attach; do
    rm -rf "build-fuzz/corpus-$target" && mkdir -p "build-fuzz/corpus-$target"
    [ $target = attach ] && ./build-fuzz/tests/fuzz/cbuf_fuzz_seed "build-fuzz/corpus-$target"
    if ./build-fuzz/tests/fuzz/cbuf_fuzz_$target -max_total_time="$fuzz_s" -print_final_stats=1 \
        "build-fuzz/corpus-$target" > "build-fuzz/fuzz-$target.log" 2>&1; then
      grep -E "stat::number_of_executed_units" "build-fuzz/fuzz-$target.log" | sed "s/^/    $target: /"
    else
      failed=1
      tail -40 "build-fuzz/fuzz-$target.log"
      say "the fuzzer found a problem (build-fuzz/fuzz-$target.log, crash-* files)"
    fi
  done
  rm -rf /dev/shm/cbuf-fuzz-*
  if [ $failed = 0 ]; then say "all test suites passed"; else say "FAILURES above"; fi
  return $failed
}

cmd_bench() {
  install_deps
  plain_build_args
  configure_and_build build-bench -DCMAKE_BUILD_TYPE=Release -DCBUF_BUILD_BENCH=ON -DCBUF_BUILD_TESTS=OFF \
    -DCBUF_BUILD_EXAMPLES=OFF "${PLAIN_BUILD_ARGS[@]}"
  "$PY" bench/run.py --build build-bench "$@"
  if command -v valgrind >/dev/null; then
    echo
    "$PY" bench/instructions.py --bin build-bench/bench/cbuf_instr
  fi
}

# Instructions per written/read row under callgrind, against bench/instructions.json (report only).
cmd_instructions() {
  install_deps
  configure_and_build build-bench -DCMAKE_BUILD_TYPE=Release -DCBUF_BUILD_BENCH=ON -DCBUF_BUILD_TESTS=OFF \
    -DCBUF_BUILD_EXAMPLES=OFF
  "$PY" bench/instructions.py --bin build-bench/bench/cbuf_instr "$@"
}

# The peers the benchmarks compare against, all optional (each is reported as skipped when missing):
# iceoryx, ZeroMQ and Boost.Interprocess from Debian, iceoryx2's Python bindings from PyPI (into .venv),
# and valgrind for the instruction-count check (bench/instructions.py).
BENCH_APT=(iceoryx libiceoryx-posh-dev libiceoryx-hoofs-dev libzmq3-dev libboost-dev pkg-config valgrind)
cmd_bench_deps() {
  ensure_python
  apt_install "${BENCH_APT[@]}"
  say "installing Python package into $VENV: iceoryx2"
  "$PY" -m pip install -q iceoryx2
}

cmd_goldens() {
  ensure_python
  for schema in schema/examples/*.json; do
    name=$(basename "$schema" .json)
    PYTHONPATH="$ROOT/codegen" "$PY" -m cbuf_codegen "$schema" -o "generated/$name" --idl-out "generated/$name"
  done
  python3 codegen/tools/cpp_globals.py > codegen/cbuf_codegen/cpp_globals.txt  # names refused for schemas
  say "generated/ and codegen/cbuf_codegen/cpp_globals.txt refreshed; review with git diff"
}

case "${1:-}" in
  demo) cmd_demo ;;
  test) cmd_test ;;
  setup) cmd_setup ;;
  bench) shift; cmd_bench "$@" ;;
  bench-deps) cmd_bench_deps ;;
  instructions) shift; cmd_instructions "$@" ;;
  goldens) cmd_goldens ;;
  *) echo "usage: $0 demo|test|setup|bench|bench-deps|instructions|goldens" >&2; exit 2 ;;
esac
