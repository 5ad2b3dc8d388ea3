// cbuf._core.Buffer: one cbuf::RawConsumer (consumer.hpp, the owner of the read path's whole operations).
// Every call runs one of its operations; the binding adds only what Python needs: the GIL released around
// long copies and waits, waits cut into slices so that Ctrl-C and close() are noticed, NumPy arrays as
// destinations, and a lock so that threads can share one Reader.
#include "core.hpp"

#include <algorithm>
#include <chrono>
#include <tuple>
#include <limits>
#include <memory>
#include <optional>
#include <string>

namespace cbuf_py {
namespace {

using namespace std::chrono_literals;

// One attached consumer and the lock its calls take. Every call takes its own reference before it releases the
// GIL, so close() - which drops only the Buffer's reference - never frees a consumer under a call in flight in
// another thread; zero-copy views hold the mapping itself (RawConsumer::mapping), which outlives close() and
// the move to a new epoch.
struct Shared {
  Shared(const std::string& name_or_path, const cbuf::ConsumerOptions& o) : c(name_or_path, o) {}
  cbuf::RawConsumer c;
  // Serialises the calls of threads sharing one Reader (the cursor, and the move to a new epoch that follows a
  // restart in place): each row is delivered once, and every loss is counted once. Never waited for while
  // holding the GIL (with_consumer), so a thread holding it never waits for a thread that holds the GIL.
  std::mutex lock;
};

struct Buffer {
  std::shared_ptr<Shared> s;

  std::shared_ptr<Shared> get() const {  // with the GIL held, like every change of `s`
    if (!s) throw py::value_error("the buffer is closed");
    return s;
  }
};

// Runs f(consumer) holding the consumer's lock. With the GIL held when the lock is free at once and the work
// is short (`bytes` to copy below kCopyWithGil); otherwise the GIL is released first, then the lock taken.
template <class F>
auto with_consumer(const Buffer& b, F&& f, std::size_t bytes = 0) {
  auto s = b.get();
  std::unique_lock lock(s->lock, std::try_to_lock);
  if (lock.owns_lock() && bytes < kCopyWithGil) return f(s->c);
  py::gil_scoped_release nogil;
  if (!lock.owns_lock()) lock.lock();
  return f(s->c);
}

py::list columns_list(const std::vector<cbuf::detail::ColumnLayout>& cols) {
  py::list out;
  for (const auto& c : cols) out.append(py::make_tuple(c.name, c.type, c.numpy, c.count, c.offset));
  return out;
}

// The longest a wait runs without returning to Python (signals, close() from another thread).
constexpr std::chrono::milliseconds kWaitSlice{20};

// A writable C-contiguous array's bytes (taken with the GIL held).
struct OutBytes {
  std::byte* data = nullptr;
  std::size_t size = 0;
};

OutBytes out_bytes(py::array& out) {
  if (!(out.flags() & py::array::c_style) || !out.writeable())
    throw py::value_error("out must be a writable C-contiguous array");
  return {static_cast<std::byte*>(out.mutable_data()), static_cast<std::size_t>(out.nbytes())};
}

// Refuses an `out` shorter than `rows` rows of `row_size` bytes (callable without the GIL).
void check_fits(const OutBytes& out, std::size_t rows, std::size_t row_size) {
  if (out.size < rows * row_size)
    throw py::value_error("out holds " + std::to_string(out.size) + " bytes; " + std::to_string(rows * row_size) +
                          " needed");
}

}  // namespace

void bind_reader(py::module_& m) {
  py::class_<Buffer>(m, "Buffer")
      .def(py::init([](const std::string& name_or_path, const std::string& dir, cbuf::Start start,
                       std::uint64_t start_index, double attach_timeout, bool follow, std::optional<double> pace,
                       bool live) {
             if (name_or_path.find('\0') != std::string::npos)
               throw py::value_error("the buffer name or path contains a NUL character");
             if (!(attach_timeout >= 0) || attach_timeout > 1e9)
               throw py::value_error("attach_timeout must be a number of seconds >= 0");
             if (pace && !(*pace >= 0 && *pace <= 1))
               throw py::value_error("pace must be None or a number of seconds in 0..1");
             cbuf::ConsumerOptions o;
             o.dir(dir).attach_timeout(std::chrono::milliseconds(static_cast<long>(attach_timeout * 1000)));
             o.follow(follow).wait_live(live);
             if (pace) o.pace(std::chrono::nanoseconds(static_cast<long>(*pace * 1e9)));
             if (start == cbuf::Start::kIndex)
               o.start_index(start_index);
             else
               o.start(start);
             py::gil_scoped_release nogil;  // attaching may wait for publication
             return Buffer{std::make_shared<Shared>(name_or_path, o)};
           }),
           py::arg("name_or_path"), py::arg("dir") = "", py::arg("start") = cbuf::Start::kOldest,
           py::arg("start_index") = 0, py::arg("attach_timeout") = 1.0, py::arg("follow") = false,
           py::arg("pace") = py::none(), py::arg("live") = false)
      .def_property_readonly("path", [](const Buffer& b) { return with_consumer(b, [](auto& c) { return c.path(); }); })
      .def_property_readonly("capacity", [](const Buffer& b) { return with_consumer(b, [](auto& c) { return c.capacity(); }); })
      .def_property_readonly("row_size", [](const Buffer& b) { return with_consumer(b, [](auto& c) { return c.row_size(); }); })
      .def_property_readonly("epoch", [](const Buffer& b) { return with_consumer(b, [](auto& c) { return c.epoch(); }); })
      .def_property_readonly("schema_json", [](const Buffer& b) {
        return with_consumer(b, [](auto& c) { return c.schema_json(); });
      })
      // The schema as the runtime parsed and checked it, re-serialised: always well-formed JSON for json.loads.
      .def_property_readonly("schema_checked", [](const Buffer& b) {
        return with_consumer(b, [](auto& c) {
          return c.schema().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        });
      })
      // The columns as the runtime validated them against the row: (name, type, numpy format, count, offset).
      .def_property_readonly("columns", [](const Buffer& b) {
        auto cols = with_consumer(b, [](auto& c) { return c.columns(); });
        return columns_list(cols);
      })
      .def_property_readonly("fingerprint", [](const Buffer& b) { return with_consumer(b, [](auto& c) { return c.fingerprint(); }); })
      .def_property_readonly("base_index", [](const Buffer& b) { return with_consumer(b, [](auto& c) { return c.base_index(); }); })
      .def_property_readonly("closed", [](const Buffer& b) { return !b.s; })
      .def_property_readonly("lost_total", [](const Buffer& b) { return with_consumer(b, [](auto& c) { return c.lost_total(); }); })
      .def_property_readonly("cursor", [](const Buffer& b) { return with_consumer(b, [](auto& c) { return c.cursor(); }); })
      // RawConsumer::pacing: what pacing did since attaching (catch-ups, pauses, rows read after pauses).
      .def_property_readonly("pacing", [](const Buffer& b) {
        const auto [p, paced] = with_consumer(b, [](auto& c) { return std::pair(c.pacing(), c.paced()); });
        py::dict d;
        d["catch_ups"] = p.catch_ups;
        d["pauses"] = p.pauses;
        d["rows_after_pauses"] = p.rows_after_pauses;
        d["paced"] = paced;
        return d;
      })
      .def_property_readonly("truncated", [](const Buffer& b) { return with_consumer(b, [](auto& c) { return c.truncated(); }); })
      // The header as validated at attach (the fields of docs/format.md section 2 but for the wait words and
      // the reserved bytes), with the mutable words as they are now: state, closed_ns and head.
      .def("header", [](const Buffer& b) {
        const auto [h, closed_ns, head] = with_consumer(b, [](auto& c) {
          return std::tuple(c.header(), c.closed_ns(), c.head());
        });
        py::dict d;
        d["magic"] = h.magic;
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
        d["flags"] = h.flags;
        d["producer_pid"] = h.producer_pid;
        d["producer_start_time"] = h.producer_start_time;
        d["epoch"] = h.epoch;
        d["created_ns"] = h.created_ns;
        d["state"] = h.state;
        d["closed_ns"] = closed_ns;
        d["head"] = head;
        return d;
      })
      .def("head", [](const Buffer& b) { return with_consumer(b, [](auto& c) { return c.head(); }); })
      .def("state", [](const Buffer& b) { return with_consumer(b, [](auto& c) { return c.state(); }); })
      .def("seek", [](Buffer& b, std::uint64_t i) { with_consumer(b, [i](auto& c) { c.seek(i); }); }, py::arg("index"))
      .def("latest", [](const Buffer& b, py::array out) -> std::optional<std::uint64_t> {
        const OutBytes dst = out_bytes(out);
        return with_consumer(b, [&](auto& c) -> std::optional<std::uint64_t> {
          check_fits(dst, 1, c.row_size());
          std::uint64_t index = 0;
          return c.latest(dst.data, &index) ? std::optional(index) : std::nullopt;
        });
      }, py::arg("out"))
      .def("last", [](const Buffer& b, std::size_t n, py::array out) {
        const OutBytes dst = out_bytes(out);
        const cbuf::Batch r = with_consumer(b, [&](auto& c) {
          check_fits(dst, n, c.row_size());
          return c.last(n, dst.data);
        }, dst.size);
        return py::make_tuple(r.first, r.count);
      }, py::arg("n"), py::arg("out"))
      // RawConsumer::rows: the first consecutive run of valid rows of [a, b), at most len(out) of them.
      .def("rows", [](const Buffer& b, std::uint64_t a, std::uint64_t e, py::array out) {
        if (e < a) throw py::value_error("rows(a, b) needs a <= b");
        const OutBytes dst = out_bytes(out);
        const cbuf::Batch r = with_consumer(b, [&](auto& c) {
          return c.rows(a, e, dst.data, dst.size / c.row_size());
        }, dst.size);
        return py::make_tuple(r.first, r.count);
      }, py::arg("a"), py::arg("b"), py::arg("out"))
      // (first, count, lost first, lost count, restart): restart is (old epoch, new epoch, old end, new start,
      // schema changed) on the read that moved a following reader to a new epoch, else None.
      .def("read_new", [](Buffer& b, std::size_t max, py::array out) -> py::tuple {
        const OutBytes dst = out_bytes(out);
        const cbuf::Batch r = with_consumer(b, [&](auto& c) {
          check_fits(dst, max, c.row_size());
          return c.read_new(dst.data, max);
        }, dst.size);
        py::object restart = py::none();
        if (r.restart)
          restart = py::make_tuple(r.restart.old_epoch, r.restart.new_epoch, r.restart.old_end, r.restart.new_start,
                                   r.restart.schema_changed);
        return py::make_tuple(r.first, r.count, r.lost.first, r.lost.count, restart);
      }, py::arg("max"), py::arg("out"))
      // RawConsumer::wait, up to `timeout` seconds (None: forever), in slices of kWaitSlice: between them
      // signal handlers run (Ctrl-C raises KeyboardInterrupt here) and close() from another thread is noticed
      // (ValueError).
      .def("wait", [](Buffer& b, std::optional<double> timeout, cbuf::Idle idle) {
        if (timeout && !(*timeout >= 0)) throw py::value_error("timeout must be None or a number of seconds >= 0");
        const auto deadline = timeout && *timeout < 1e9
                                  ? std::chrono::steady_clock::now() +
                                        std::chrono::duration_cast<std::chrono::nanoseconds>(
                                            std::chrono::duration<double>(*timeout))
                                  : std::chrono::steady_clock::time_point::max();
        for (;;) {
          const auto slice = std::clamp<std::chrono::nanoseconds>(deadline - std::chrono::steady_clock::now(), 0ns, kWaitSlice);
          auto s = b.get();
          bool ready;
          {
            py::gil_scoped_release nogil;
            std::lock_guard lock(s->lock);
            ready = s->c.wait(slice, idle);
          }
          if (!b.s) throw py::value_error("the buffer is closed");
          if (ready) return true;
          if (PyErr_CheckSignals() != 0) throw py::error_already_set();
          if (std::chrono::steady_clock::now() >= deadline) return false;
        }
      }, py::arg("timeout"), py::arg("idle") = cbuf::Idle::kBlock)
      // RawConsumer::slots: the slot area as a read-only byte array (capacity x slot_size), unvalidated. It
      // holds the mapping, which outlives close() and the move to a new epoch.
      .def("slots", [](const Buffer& b) {
        auto [mapping, slots, layout] = with_consumer(b, [](auto& c) {
          return std::tuple(c.mapping(), c.slots(), c.layout());
        });
        const auto holder = new std::shared_ptr<const cbuf::os::Mapping>(std::move(mapping));
        py::capsule keep(holder, [](void* p) { delete static_cast<std::shared_ptr<const cbuf::os::Mapping>*>(p); });
        py::array arr(py::dtype("u1"),
                      {static_cast<py::ssize_t>(layout.capacity), static_cast<py::ssize_t>(layout.slot_size)},
                      {static_cast<py::ssize_t>(layout.slot_size), static_cast<py::ssize_t>(1)},
                      reinterpret_cast<const std::uint8_t*>(slots.data()), keep);
        py::detail::array_proxy(arr.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
        return arr;
      })
      .def("close", [](Buffer& b) { b.s.reset(); });
}

}  // namespace cbuf_py
