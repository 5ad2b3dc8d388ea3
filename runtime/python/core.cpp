// cbuf._core - the pybind11 module under the Python API (python/cbuf). It exposes the same untyped runtime the
// C++ consumers use: one implementation of attach/validation and of the seqlock read. Copies go into NumPy
// buffers owned by the caller, with the GIL released; waits release the GIL and return to Python regularly so
// Ctrl-C (KeyboardInterrupt) interrupts them.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <cbuf/cbuf.hpp>

namespace py = pybind11;
using namespace std::chrono_literals;

namespace {

// Owns the consumer; zero-copy views hold a shared_ptr to it, so the mapping outlives close() while they live.
struct Buffer {
  std::shared_ptr<cbuf::RawConsumer> c;

  cbuf::RawConsumer& get() const {
    if (!c) throw py::value_error("the buffer is closed");
    return *c;
  }
};

std::byte* rows_ptr(py::array& out, std::size_t rows, std::size_t row_size) {
  if (!(out.flags() & py::array::c_style) || !out.writeable())
    throw py::value_error("out must be a writable C-contiguous array");
  if (static_cast<std::size_t>(out.nbytes()) < rows * row_size)
    throw py::value_error("out holds " + std::to_string(out.nbytes()) + " bytes; " + std::to_string(rows * row_size) +
                          " needed");
  return static_cast<std::byte*>(out.mutable_data());
}

// Runs a copy of `bytes` bytes without the GIL when it is long enough for other threads to gain from it;
// short copies (a few rows: the polling case) keep it, since releasing and retaking costs more than the copy.
template <class F>
auto copy_maybe_without_gil(std::size_t bytes, F&& f) {
  if (bytes < (64u << 10)) return f();
  py::gil_scoped_release nogil;
  return f();
}

cbuf::Start parse_start(const std::string& s) {
  if (s == "oldest") return cbuf::Start::kOldest;
  if (s == "newest") return cbuf::Start::kNewest;
  if (s == "end") return cbuf::Start::kEnd;
  throw py::value_error("start must be 'oldest', 'newest', 'end' or an index, not '" + s + "'");
}

cbuf::Idle parse_idle(const std::string& s) {
  if (s == "block") return cbuf::Idle::kBlock;
  if (s == "spin") return cbuf::Idle::kBusySpin;
  if (s == "yield") return cbuf::Idle::kSpinThenYield;
  if (s == "sleep") return cbuf::Idle::kBackoffSleep;
  throw py::value_error("idle must be 'block', 'spin', 'yield' or 'sleep', not '" + s + "'");
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "cbuf runtime bindings (private: use the cbuf package)";
  m.attr("ABI_VERSION") = cbuf::kAbiVersion;
  m.attr("FORMAT_VERSION") = py::make_tuple(cbuf::kFormatMajor, cbuf::kFormatMinor);

  static py::exception<cbuf::Error> error(m, "Error");
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const cbuf::Error& e) {
      // args: (message, code name, path) - the Python layer maps the code to an exception class.
      PyErr_SetObject(error.ptr(), py::make_tuple(e.what(), std::string(cbuf::to_string(e.code())), e.path()).ptr());
    }
  });

  py::class_<Buffer>(m, "Buffer")
      .def(py::init([](const std::string& name_or_path, const std::string& dir, py::object start, double attach_timeout) {
             cbuf::ConsumerOptions o;
             o.dir(dir).attach_timeout(std::chrono::milliseconds(static_cast<long>(attach_timeout * 1000)));
             if (py::isinstance<py::int_>(start)) o.start_index(start.cast<std::uint64_t>());
             else o.start(parse_start(start.cast<std::string>()));
             py::gil_scoped_release nogil;  // attaching may wait for publication
             return Buffer{std::make_shared<cbuf::RawConsumer>(name_or_path, o)};
           }),
           py::arg("name_or_path"), py::arg("dir") = "", py::arg("start") = "oldest", py::arg("attach_timeout") = 1.0)
      .def_property_readonly("path", [](const Buffer& b) { return b.get().path(); })
      .def_property_readonly("capacity", [](const Buffer& b) { return b.get().capacity(); })
      .def_property_readonly("row_size", [](const Buffer& b) { return b.get().row_size(); })
      .def_property_readonly("schema_json", [](const Buffer& b) { return b.get().schema_json(); })
      .def_property_readonly("fingerprint", [](const Buffer& b) { return b.get().fingerprint(); })
      .def_property_readonly("base_index", [](const Buffer& b) { return b.get().base_index(); })
      .def_property_readonly("closed", [](const Buffer& b) { return !b.c; })
      .def("header", [](const Buffer& b) {
        const cbuf::Header& h = b.get().header();
        py::dict d;
        d["version"] = py::make_tuple(h.version_major, h.version_minor);
        d["header_size"] = h.header_size;
        d["file_size"] = h.file_size;
        d["data_offset"] = h.data_offset;
        d["capacity"] = h.capacity;
        d["slot_size"] = h.slot_size;
        d["row_size"] = h.row_size;
        d["schema_offset"] = h.schema_offset;
        d["schema_size"] = h.schema_size;
        d["schema_fingerprint"] = h.schema_fingerprint;
        d["base_index"] = h.base_index;
        d["page_size"] = h.page_size;
        d["mem_flags"] = h.mem_flags;
        d["producer_pid"] = h.producer_pid;
        d["producer_start_time"] = h.producer_start_time;
        d["epoch"] = h.epoch;
        d["created_ns"] = h.created_ns;
        d["closed_ns"] = h.closed_ns;
        return d;
      })
      .def("head", [](const Buffer& b) { return b.get().head(); })
      .def("oldest", [](const Buffer& b) { return b.get().oldest(); })
      .def("state", [](const Buffer& b) { return std::string(cbuf::to_string(b.get().state())); })
      .def_property_readonly("cursor", [](const Buffer& b) { return b.get().cursor(); })
      .def("seek", [](Buffer& b, std::uint64_t i) { b.get().seek(i); })
      .def("seek_oldest", [](Buffer& b) { b.get().seek_oldest(); })
      .def("seek_end", [](Buffer& b) { b.get().seek_end(); })
      .def("latest", [](const Buffer& b, py::array out) -> std::optional<std::uint64_t> {
        auto& c = b.get();
        std::byte* dst = rows_ptr(out, 1, c.row_size());
        std::uint64_t index = 0;
        const bool ok = c.latest(dst, &index);  // one row: never worth releasing the GIL
        return ok ? std::optional<std::uint64_t>(index) : std::nullopt;
      })
      .def("last", [](const Buffer& b, std::size_t n, py::array out) {
        auto& c = b.get();
        std::byte* dst = rows_ptr(out, n, c.row_size());
        const cbuf::Batch r = copy_maybe_without_gil(n * c.row_size(), [&] { return c.last(n, dst); });
        return py::make_tuple(r.first, r.count);
      })
      // Rows [a, b) that are still valid: returns (first, count); rows before the oldest valid one, or
      // overwritten during the copy, are left out at the front.
      .def("rows", [](const Buffer& b, std::uint64_t a, std::uint64_t e, py::array out) {
        auto& c = b.get();
        if (e < a) throw py::value_error("rows(a, b) needs a <= b");
        std::byte* dst = rows_ptr(out, e - a, c.row_size());
        const cbuf::Batch r =
            copy_maybe_without_gil((e - a) * c.row_size(), [&] { return c.read_range(a, e, dst); });
        return py::make_tuple(r.first, r.count);
      })
      .def("read_new", [](Buffer& b, std::size_t max, py::array out) {
        auto& c = b.get();
        std::byte* dst = rows_ptr(out, max, c.row_size());
        const cbuf::Batch r = copy_maybe_without_gil(max * c.row_size(), [&] { return c.read_new(dst, max); });
        return py::make_tuple(r.first, r.count, r.lost.first, r.lost.count);
      })
      // Waits up to `timeout` seconds (None: forever) for a row at the cursor. Returns to Python every 50 ms to
      // let signal handlers run, so Ctrl-C raises KeyboardInterrupt here.
      .def("wait", [](Buffer& b, std::optional<double> timeout, const std::string& idle) {
        auto& c = b.get();
        const cbuf::Idle how = parse_idle(idle);
        const auto deadline = timeout ? std::chrono::steady_clock::now() +
                                            std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                std::chrono::duration<double>(std::max(0.0, *timeout)))
                                      : std::chrono::steady_clock::time_point::max();
        for (;;) {
          const auto now = std::chrono::steady_clock::now();
          const auto slice = std::min<std::chrono::nanoseconds>(50ms, deadline - now);
          bool ready;
          {
            py::gil_scoped_release nogil;
            ready = c.wait(std::max<std::chrono::nanoseconds>(slice, 0ns), how);
          }
          if (ready) return true;
          if (PyErr_CheckSignals() != 0) throw py::error_already_set();
          if (std::chrono::steady_clock::now() >= deadline) return false;
        }
      }, py::arg("timeout"), py::arg("idle") = "block")
      .def("blocking_wait_available", [](Buffer& b) { return b.get().blocking_wait_available(); })
      // The slot area as a read-only byte view (capacity x slot_size); its base keeps the mapping alive.
      .def("slots_view", [](py::object self) {
        auto& b = self.cast<Buffer&>();
        auto& c = b.get();
        const auto holder = new std::shared_ptr<cbuf::RawConsumer>(b.c);
        py::capsule keep(holder, [](void* p) { delete static_cast<std::shared_ptr<cbuf::RawConsumer>*>(p); });
        const auto& l = c.layout();
        const std::byte* base = c.raw_row_unvalidated(0).data() - cbuf::seqlock::kSeqOffset;
        py::array arr(py::dtype("u1"), {static_cast<py::ssize_t>(l.capacity), static_cast<py::ssize_t>(l.slot_size)},
                      {static_cast<py::ssize_t>(l.slot_size), static_cast<py::ssize_t>(1)},
                      reinterpret_cast<const std::uint8_t*>(base), keep);
        py::detail::array_proxy(arr.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
        return arr;
      })
      .def("close", [](Buffer& b) { b.c.reset(); });

  // The untyped producer, for tools (cbuf replay): rows come as bytes-like objects or C-contiguous arrays.
  py::class_<cbuf::RawProducer>(m, "Producer")
      .def(py::init([](const std::string& name, std::uint32_t row_size, std::uint64_t capacity,
                       const std::string& schema_json, std::uint64_t fingerprint, const std::string& dir,
                       unsigned mode, bool keep, bool replace) {
             cbuf::ProducerOptions o;
             o.name(name).dir(dir).capacity(capacity).schema_json(schema_json).fingerprint(fingerprint)
                 .mode(static_cast<mode_t>(mode)).on_close(keep ? cbuf::OnClose::kKeep : cbuf::OnClose::kUnlink)
                 .if_exists(replace ? cbuf::IfExists::kReplace : cbuf::IfExists::kFail);
             return std::make_unique<cbuf::RawProducer>(o, row_size);
           }),
           py::arg("name"), py::arg("row_size"), py::arg("capacity"), py::arg("schema_json") = "",
           py::arg("fingerprint") = 0, py::arg("dir") = "", py::arg("mode") = 0600, py::arg("keep") = true,
           py::arg("replace") = false)
      .def_property_readonly("path", &cbuf::RawProducer::path)
      .def_property_readonly("next_index", &cbuf::RawProducer::next_index)
      // Writes len(rows) // row_size rows stored back to back; one head update. Returns the first index.
      .def("write", [](cbuf::RawProducer& p, py::buffer rows) {
        if (!p.is_open()) throw py::value_error("the producer is closed");
        py::buffer_info info = rows.request();
        const auto bytes = static_cast<std::size_t>(info.size * info.itemsize);
        if (bytes % p.row_size() != 0)
          throw py::value_error(std::to_string(bytes) + " bytes is not a whole number of " +
                                std::to_string(p.row_size()) + "-byte rows");
        py::gil_scoped_release nogil;
        return p.write_batch(info.ptr, bytes / p.row_size());
      })
      .def("close", &cbuf::RawProducer::close);
}
