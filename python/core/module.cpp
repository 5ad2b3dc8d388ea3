// cbuf._core - the pybind11 module under the Python API (python/cbuf). It exposes the same untyped runtime the
// C++ consumers use: one implementation of attach/validation and of the seqlock read. Copies go into NumPy
// buffers owned by the caller, with the GIL released; waits release the GIL and return to Python regularly so
// Ctrl-C (KeyboardInterrupt) interrupts them.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <cbuf/cbuf.hpp>

namespace py = pybind11;
using namespace std::chrono_literals;

namespace {

// One attached consumer. Every call takes its own reference before it releases the GIL, so close() - which
// drops only the Buffer's reference - never frees a consumer under a call in flight in another thread; zero-copy
// views hold one too, so the mapping outlives close() while they live.
struct Shared {
  Shared(const std::string& name_or_path, const cbuf::ConsumerOptions& o, bool follow_restarts)
      : c(name_or_path, o), follow(follow_restarts) {}
  Shared(cbuf::RawConsumer consumer, bool follow_restarts) : c(std::move(consumer)), follow(follow_restarts) {}
  cbuf::RawConsumer c;
  // Following restarts is done here, not by the consumer itself (ConsumerOptions::follow): the move to a new
  // epoch makes a new Shared, so calls in flight in other threads finish on the old one, never on a consumer
  // whose mapping or row size changes under them (rows_ptr's size check against `out` holds for the call).
  const bool follow;
  // Serialises the cursor calls of threads sharing one Reader: each row is delivered once, and every loss is
  // counted once. Taken either with the GIL held and never released meanwhile, or after releasing the GIL - so
  // a thread holding it never waits for the GIL, and the two cannot deadlock.
  std::mutex cursor;
  std::uint64_t lost_total = 0;  // guarded by `cursor`
};

struct Buffer {
  std::shared_ptr<Shared> s;

  std::shared_ptr<Shared> get() const {  // with the GIL held, like every change of `s`
    if (!s) throw py::value_error("the buffer is closed");
    return s;
  }
};

// Following: after an empty read, if a new producer holds the name, attach to it as a new Shared and make it
// the Buffer's (with the GIL held). Returns what changed, or nothing if there is nothing to move to yet.
std::optional<cbuf::Restart> follow_restart(Buffer& b, const std::shared_ptr<Shared>& s) {
  std::unique_lock lock(s->cursor);
  if (b.s != s || !s->c.successor_ready()) return std::nullopt;
  try {
    cbuf::RawConsumer next = s->c.successor();
    const cbuf::Restart r = s->c.hand_over(next);
    const std::uint64_t lost = s->lost_total;
    lock.unlock();
    b.s = std::make_shared<Shared>(std::move(next), true);
    b.s->lost_total = lost;  // lost since attaching, across epochs
    return r;
  } catch (const cbuf::Error& e) {
    if (e.code() == cbuf::Errc::kNotFound || e.code() == cbuf::Errc::kNotPublished) return std::nullopt;
    throw;
  }
}

// Runs f(consumer) holding the cursor lock (with the GIL held: a short call that never releases it).
template <class F>
auto locked(const Buffer& b, F&& f) {
  auto s = b.get();
  std::lock_guard lock(s->cursor);
  return f(s->c);
}

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

cbuf::Feature parse_feature(const std::string& s, const char* what) {
  if (s == "off") return cbuf::Feature::kOff;
  if (s == "try") return cbuf::Feature::kTry;
  if (s == "require") return cbuf::Feature::kRequire;
  throw py::value_error(std::string(what) + " must be 'off', 'try' or 'require', not '" + s + "'");
}

cbuf::Start parse_start(const std::string& s) {
  if (s == "oldest") return cbuf::Start::kOldest;
  if (s == "newest") return cbuf::Start::kNewest;
  if (s == "end") return cbuf::Start::kEnd;
  throw py::value_error("start must be 'oldest', 'newest', 'end' or an index, not '" + s + "'");
}

py::list columns_tuple(const std::vector<cbuf::detail::ColumnLayout>& cols) {
  py::list out;
  for (const auto& c : cols) out.append(py::make_tuple(c.name, c.type, c.numpy, c.count, c.offset));
  return out;
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
  // Facts the runtime owns, for the Python tools (one owner: Python asks instead of restating them).
  m.attr("HEADER_SIZE") = cbuf::kHeaderSize;
  m.attr("MAX_ROW_SIZE") = cbuf::kMaxRowSize;
  m.attr("MAX_CAPACITY") = cbuf::kMaxCapacity;
  m.attr("INDEX_LIMIT") = cbuf::kIndexLimit;
  m.attr("MAX_SCHEMA_SIZE") = cbuf::kMaxSchemaSize;
  py::dict mem_flags;
  mem_flags["mlocked"] = cbuf::kMemMlocked;
  mem_flags["hugetlbfs"] = cbuf::kMemHugetlbfs;
  mem_flags["thp_advised"] = cbuf::kMemThpAdvised;
  mem_flags["prefaulted"] = cbuf::kMemPrefaulted;
  m.attr("MEM_FLAGS") = mem_flags;
  m.def("search_dirs", [](const std::string& dir) { return cbuf::shm::search_dirs(dir); }, py::arg("dir") = "",
        "The directories a bare buffer name is looked up in: dir, else $CBUF_DIR or /dev/shm, then a hugetlbfs mount.");
  m.def("unlink_if_unheld", [](const std::string& path, std::uint64_t dev, std::uint64_t ino, bool dry_run) {
    py::gil_scoped_release nogil;
    return cbuf::shm::unlink_if_unheld(path, static_cast<dev_t>(dev), static_cast<ino_t>(ino), dry_run);
  }, py::arg("path"), py::arg("dev"), py::arg("ino"), py::arg("dry_run") = false,
        "Removes a buffer file if it is still (dev, ino) and no producer holds its lock; True if removed.");

  static py::exception<cbuf::Error> error(m, "Error");
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const cbuf::Error& e) {
      // Raised as the cbuf package's own class for the code (cbuf.errors.from_core), so that every call - not
      // only attach - raises a cbuf.Error subclass; _core.Error (args: message, code name, path) only if the
      // package cannot be imported.
      const auto args = py::make_tuple(e.what(), std::string(cbuf::to_string(e.code())), e.path());
      try {
        py::object exc = py::module_::import("cbuf.errors").attr("from_core_args")(*args);
        PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
      } catch (py::error_already_set&) {
        PyErr_SetObject(error.ptr(), args.ptr());
      }
    }
  });

  py::class_<Buffer>(m, "Buffer")
      .def(py::init([](const std::string& name_or_path, const std::string& dir, py::object start, double attach_timeout,
                       bool follow, std::optional<double> pace, bool live) {
             if (name_or_path.find('\0') != std::string::npos)
               throw py::value_error("the buffer name or path contains a NUL character");
             if (!(attach_timeout >= 0) || attach_timeout > 1e9)
               throw py::value_error("attach_timeout must be a number of seconds >= 0");
             if (pace && !(*pace >= 0 && *pace <= 1))
               throw py::value_error("pace must be None or a number of seconds in 0..1");
             cbuf::ConsumerOptions o;
             o.dir(dir).attach_timeout(std::chrono::milliseconds(static_cast<long>(attach_timeout * 1000))).wait_live(live);
             if (pace) o.pace(std::chrono::nanoseconds(static_cast<long>(*pace * 1e9)));
             if (py::isinstance<py::int_>(start) && !py::isinstance<py::bool_>(start)) {
               const auto i = start.cast<py::int_>();
               if (i < py::int_(0) || i > py::int_(std::numeric_limits<std::uint64_t>::max()))
                 throw py::value_error("start index must be in 0..2**64-1, not " + std::string(py::str(start)));
               o.start_index(i.cast<std::uint64_t>());
             } else if (py::isinstance<py::str>(start)) {
               o.start(parse_start(start.cast<std::string>()));
             } else {
               throw py::type_error("start must be 'oldest', 'newest', 'end' or a row index, not " +
                                    std::string(py::str(py::type::of(start).attr("__name__"))));
             }
             py::gil_scoped_release nogil;  // attaching may wait for publication
             return Buffer{std::make_shared<Shared>(name_or_path, o, follow)};
           }),
           py::arg("name_or_path"), py::arg("dir") = "", py::arg("start") = "oldest", py::arg("attach_timeout") = 1.0,
           py::arg("follow") = false, py::arg("pace") = py::none(), py::arg("live") = false)
      .def_property_readonly("path", [](const Buffer& b) { return locked(b, [](auto& c) { return c.path(); }); })
      .def_property_readonly("capacity", [](const Buffer& b) { return locked(b, [](auto& c) { return c.capacity(); }); })
      .def_property_readonly("row_size", [](const Buffer& b) { return locked(b, [](auto& c) { return c.row_size(); }); })
      .def_property_readonly("epoch", [](const Buffer& b) { return locked(b, [](auto& c) { return c.epoch(); }); })
      .def_property_readonly("schema_json", [](const Buffer& b) { return locked(b, [](auto& c) { return c.schema_json(); }); })
      // The schema as the runtime parsed and checked it, re-serialised: always well-formed JSON for json.loads.
      .def_property_readonly("schema_checked", [](const Buffer& b) {
        return locked(b, [](auto& c) { return c.schema().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); });
      })
      // The columns as the runtime validated them against the row: (name, type, numpy format, count, offset).
      .def_property_readonly("columns", [](const Buffer& b) { return locked(b, [](auto& c) { return columns_tuple(c.columns()); }); })
      .def_property_readonly("fingerprint", [](const Buffer& b) { return locked(b, [](auto& c) { return c.fingerprint(); }); })
      .def_property_readonly("base_index", [](const Buffer& b) { return locked(b, [](auto& c) { return c.base_index(); }); })
      .def_property_readonly("closed", [](const Buffer& b) { return !b.s; })
      .def_property_readonly("lost_total", [](const Buffer& b) {
        auto s = b.get();
        std::lock_guard lock(s->cursor);
        return s->lost_total;
      })
      // The header as validated at attach, plus the mutable words as they are now.
      .def("header", [](const Buffer& b) {
        auto s = b.get();
        std::lock_guard lock(s->cursor);
        const cbuf::Header& h = s->c.header();
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
        d["closed_ns"] = s->c.closed_ns();
        return d;
      })
      .def("head", [](const Buffer& b) { return locked(b, [](auto& c) { return c.head(); }); })
      .def("oldest", [](const Buffer& b) { return locked(b, [](auto& c) { return c.oldest(); }); })
      .def("state", [](const Buffer& b) { return locked(b, [](auto& c) { return std::string(cbuf::to_string(c.state())); }); })
      .def_property_readonly("cursor", [](const Buffer& b) { return locked(b, [](auto& c) { return c.cursor(); }); })
      .def("seek", [](Buffer& b, std::uint64_t i) { locked(b, [i](auto& c) { c.seek(i); }); })
      .def("seek_oldest", [](Buffer& b) { locked(b, [](auto& c) { c.seek_oldest(); }); })
      .def("seek_end", [](Buffer& b) { locked(b, [](auto& c) { c.seek_end(); }); })
      .def("latest", [](const Buffer& b, py::array out) -> std::optional<std::uint64_t> {
        auto s = b.get();
        std::lock_guard lock(s->cursor);
        std::byte* dst = rows_ptr(out, 1, s->c.row_size());
        std::uint64_t index = 0;
        const bool ok = s->c.latest(dst, &index);  // one row: never worth releasing the GIL
        return ok ? std::optional<std::uint64_t>(index) : std::nullopt;
      })
      .def("last", [](const Buffer& b, std::size_t n, py::array out) {
        auto s = b.get();
        std::byte* dst = rows_ptr(out, n, s->c.row_size());
        const cbuf::Batch r = copy_maybe_without_gil(n * s->c.row_size(), [&] {
          std::lock_guard lock(s->cursor);
          return s->c.last(n, dst);
        });
        return py::make_tuple(r.first, r.count);
      })
      // Rows of [a, b) that are still valid, at most len(out) of them (the newest, when [a, b) holds more):
      // returns (first, count); rows before the oldest valid one, or overwritten during the copy, are left out
      // at the front.
      .def("rows", [](const Buffer& b, std::uint64_t a, std::uint64_t e, py::array out) {
        auto s = b.get();
        if (e < a) throw py::value_error("rows(a, b) needs a <= b");
        const std::uint64_t n = static_cast<std::uint64_t>(out.size());
        if (e - a > n) {  // only capacity rows can be valid: keep the newest n below min(e, head)
          const std::uint64_t hi = std::min(e, s->c.head());
          if (hi > a && hi - a > n) a = hi - n;
          e = a + n;
        }
        std::byte* dst = rows_ptr(out, e - a, s->c.row_size());
        const cbuf::Batch r = copy_maybe_without_gil((e - a) * s->c.row_size(), [&] {
          std::lock_guard lock(s->cursor);
          return s->c.read_range(a, e, dst);
        });
        return py::make_tuple(r.first, r.count);
      })
      .def("read_new", [](Buffer& b, std::size_t max, py::array out) -> py::tuple {
        auto s = b.get();
        std::byte* dst = rows_ptr(out, max, s->c.row_size());
        const cbuf::Batch r = copy_maybe_without_gil(max * s->c.row_size(), [&] {
          std::lock_guard lock(s->cursor);
          const cbuf::Batch batch = s->c.read_new(dst, max);
          s->lost_total += batch.lost.count;
          return batch;
        });
        py::object restart = py::none();
        if (s->follow && r.count == 0 && r.lost.count == 0 && max != 0) {
          if (auto moved = follow_restart(b, s)) {
            restart = py::make_tuple(moved->old_epoch, moved->new_epoch, moved->old_end, moved->new_start,
                                     moved->schema_changed);
            return py::make_tuple(moved->new_start, 0, moved->new_start, 0, restart);
          }
        }
        return py::make_tuple(r.first, r.count, r.lost.first, r.lost.count, restart);
      })
      // Waits up to `timeout` seconds (None: forever) for a row at the cursor. Returns to Python every 50 ms to
      // let signal handlers run, so Ctrl-C raises KeyboardInterrupt here, and to notice close() from another
      // thread (ValueError).
      .def("wait", [](Buffer& b, std::optional<double> timeout, const std::string& idle) {
        auto s = b.get();
        const cbuf::Idle how = parse_idle(idle);
        if (timeout && !(*timeout >= 0)) throw py::value_error("timeout must be None or a number of seconds >= 0");
        const auto deadline = timeout && *timeout < 1e9
                                  ? std::chrono::steady_clock::now() +
                                        std::chrono::duration_cast<std::chrono::nanoseconds>(
                                            std::chrono::duration<double>(*timeout))
                                  : std::chrono::steady_clock::time_point::max();
        for (;;) {
          const auto now = std::chrono::steady_clock::now();
          const auto slice = std::min<std::chrono::nanoseconds>(50ms, deadline - now);
          bool ready;
          {
            py::gil_scoped_release nogil;
            std::uint64_t cursor;
            std::chrono::steady_clock::time_point started;
            {
              std::lock_guard lock(s->cursor);
              cursor = s->c.cursor();
              if (how == cbuf::Idle::kBlock) s->c.blocking_wait_available();  // maps the wait page once
              started = s->c.sit_out_pace(deadline);
            }
            ready = s->c.wait_for(cursor, std::max<std::chrono::nanoseconds>(slice, 0ns), how);
            std::lock_guard lock(s->cursor);
            s->c.waited_since(started);
          }
          if (!b.s) throw py::value_error("the buffer is closed");
          if (ready) return true;
          if (s->follow) {  // a new producer holds the name: the next read_new() moves to it
            std::lock_guard lock(s->cursor);
            if (s->c.successor_ready()) return true;
          }
          if (PyErr_CheckSignals() != 0) throw py::error_already_set();
          if (std::chrono::steady_clock::now() >= deadline) return false;
        }
      }, py::arg("timeout"), py::arg("idle") = "block")
      .def("blocking_wait_available", [](Buffer& b) {
        return locked(b, [](auto& c) { return c.blocking_wait_available(); });
      })
      .def_property_readonly("truncated", [](const Buffer& b) { return locked(b, [](auto& c) { return c.truncated(); }); })
      // The slot area as a read-only byte view (capacity x slot_size); its base keeps the mapping alive.
      .def("slots_view", [](py::object self) {
        auto s = self.cast<Buffer&>().get();
        std::lock_guard lock(s->cursor);
        // The view holds the mapping itself, which outlives close() and a reattach() to a new epoch.
        const auto holder = new std::shared_ptr<const cbuf::shm::Mapping>(s->c.mapping());
        py::capsule keep(holder, [](void* p) { delete static_cast<std::shared_ptr<const cbuf::shm::Mapping>*>(p); });
        const auto& l = s->c.layout();
        const std::byte* base = s->c.raw_row_unvalidated(0).data() - cbuf::seqlock::kSeqOffset;
        py::array arr(py::dtype("u1"), {static_cast<py::ssize_t>(l.capacity), static_cast<py::ssize_t>(l.slot_size)},
                      {static_cast<py::ssize_t>(l.slot_size), static_cast<py::ssize_t>(1)},
                      reinterpret_cast<const std::uint8_t*>(base), keep);
        py::detail::array_proxy(arr.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
        return arr;
      })
      .def("close", [](Buffer& b) { b.s.reset(); });

  // The runtime's check of a schema against a row size (the one every reader relies on), for recordings.
  m.def("check_schema", [](const std::string& schema_json, std::uint64_t row_size, const std::string& where) {
    const nlohmann::json j = cbuf::detail::parse_schema_json(schema_json, where);
    return py::make_tuple(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                          columns_tuple(cbuf::detail::schema_columns(j, row_size, where)));
  }, py::arg("schema_json"), py::arg("row_size"), py::arg("where") = "");

  // What differs between two column lists (as Buffer.columns gives them), for schema-mismatch messages.
  m.def("column_changes", [](const py::list& expected, const py::list& found) {
    auto conv = [](const py::list& l) {
      std::vector<cbuf::detail::ColumnLayout> v;
      for (const auto& item : l) {
        const auto t = item.cast<py::tuple>();
        cbuf::detail::ColumnLayout c;
        c.name = t[0].cast<std::string>();
        c.type = t[1].cast<std::string>();
        c.offset = t[4].cast<std::uint64_t>();
        v.push_back(std::move(c));
      }
      return v;
    };
    return cbuf::detail::describe_column_changes(conv(expected), conv(found));
  });

  // The untyped producer, for tools (cbuf replay): rows come as bytes-like objects or C-contiguous arrays.
  py::class_<cbuf::RawProducer>(m, "Producer")
      .def(py::init([](const std::string& name, std::uint32_t row_size, std::uint64_t capacity,
                       const std::string& schema_json, std::uint64_t fingerprint, const std::string& dir,
                       unsigned mode, bool keep, bool replace, const std::string& replace_hint, std::uint64_t base_index,
                       const std::string& mlock, const std::string& huge_pages, bool prefault) {
             cbuf::ProducerOptions o;
             o.name(name).dir(dir).capacity(capacity).schema_json(schema_json).fingerprint(fingerprint).base_index(base_index)
                 .mlock(parse_feature(mlock, "mlock")).huge_pages(parse_feature(huge_pages, "huge_pages")).prefault(prefault)
                 .mode(static_cast<mode_t>(mode)).on_close(keep ? cbuf::OnClose::kKeep : cbuf::OnClose::kUnlink)
                 .if_exists(replace ? cbuf::IfExists::kReplace : cbuf::IfExists::kFail).replace_hint(replace_hint);
             return std::make_unique<cbuf::RawProducer>(o, row_size);
           }),
           py::arg("name"), py::arg("row_size"), py::arg("capacity"), py::arg("schema_json") = "",
           py::arg("fingerprint") = 0, py::arg("dir") = "", py::arg("mode") = 0600, py::arg("keep") = true,
           py::arg("replace") = true, py::arg("replace_hint") = "replace=True", py::arg("base_index") = 0,
           py::arg("mlock") = "off", py::arg("huge_pages") = "off", py::arg("prefault") = false)
      .def_property_readonly("memory", [](const cbuf::RawProducer& p) {
        const cbuf::MemoryReport& m = p.memory();
        py::dict d;
        d["mlocked"] = m.mlocked;
        d["page_size"] = m.page_size;
        d["hugetlbfs"] = m.hugetlbfs;
        d["thp_advised"] = m.thp_advised;
        d["prefaulted"] = m.prefaulted;
        return d;
      })
      .def_property_readonly("closed", [](const cbuf::RawProducer& p) { return !p.is_open(); })
      .def_property_readonly("capacity", &cbuf::RawProducer::capacity)
      .def_property_readonly("row_size", &cbuf::RawProducer::row_size)
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
        // A row or a few: the GIL is kept (releasing and retaking it costs more than the copy).
        return copy_maybe_without_gil(bytes, [&] { return p.write_batch(info.ptr, bytes / p.row_size()); });
      })
      // Marks the next `count` rows lost without writing them (format 1.1). Returns the next index.
      .def("skip", [](cbuf::RawProducer& p, std::uint64_t count) {
        if (!p.is_open()) throw py::value_error("the producer is closed");
        return p.skip(count);
      }, py::arg("count"))
      .def("close", &cbuf::RawProducer::close);
}
