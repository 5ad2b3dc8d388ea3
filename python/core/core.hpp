// cbuf._core - the pybind11 module under the Python API (python/cbuf), one file per concept: module.cpp (the
// runtime's facts and free functions), errors.cpp (the exception classes), reader.cpp (cbuf::RawConsumer as
// Buffer), producer.cpp (cbuf::RawProducer as Producer). The binding mirrors the C++ API: it calls whole
// operations of the runtime and adds no policy of its own - only what Python needs (the GIL, signals, arrays).
#pragma once

#include <pybind11/native_enum.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstddef>
#include <mutex>
#include <utility>

#include <cbuf/cbuf.hpp>

namespace cbuf_py {

namespace py = pybind11;

void bind_errors(py::module_& m);
void bind_enums(py::module_& m);
void bind_reader(py::module_& m);
void bind_producer(py::module_& m);

// Copies shorter than this keep the GIL: releasing and retaking it costs more than the copy (the polling case).
inline constexpr std::size_t kCopyWithGil = 64u << 10;

// Runs f() without the GIL when the copy is long enough for other threads to gain from it.
template <class F>
auto copy_maybe_without_gil(std::size_t bytes, F&& f) {
  if (bytes < kCopyWithGil) return f();
  py::gil_scoped_release nogil;
  return f();
}

}  // namespace cbuf_py
