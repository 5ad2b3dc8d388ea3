// cbuf._core.Producer: cbuf::RawProducer, for the Python producer (cbuf.Producer) and the tools (cbuf replay,
// cbuf bridge sub). Rows come as bytes-like objects or C-contiguous arrays, row_size bytes each, back to back.
#include "core.hpp"

#include <memory>
#include <string>

namespace cbuf_py {

void bind_producer(py::module_& m) {
  py::class_<cbuf::RawProducer>(m, "Producer")
      .def(py::init([](const std::string& name, std::uint32_t row_size, std::uint64_t capacity,
                       const std::string& schema_json, std::uint64_t fingerprint, const std::string& dir,
                       unsigned mode, cbuf::OnClose on_close, cbuf::IfExists if_exists, const std::string& replace_hint,
                       std::uint64_t base_index, cbuf::Feature mlock, cbuf::Feature huge_pages, bool prefault) {
             cbuf::ProducerOptions o;
             o.name(name).dir(dir).capacity(capacity).schema_json(schema_json).fingerprint(fingerprint);
             o.base_index(base_index).mlock(mlock).huge_pages(huge_pages).prefault(prefault);
             o.mode(static_cast<mode_t>(mode)).on_close(on_close).if_exists(if_exists).replace_hint(replace_hint);
             return std::make_unique<cbuf::RawProducer>(o, row_size);
           }),
           py::arg("name"), py::arg("row_size"), py::arg("capacity"), py::arg("schema_json") = "",
           py::arg("fingerprint") = 0, py::arg("dir") = "", py::arg("mode") = 0600,
           py::arg("on_close") = cbuf::OnClose::kKeep, py::arg("if_exists") = cbuf::IfExists::kReplace,
           py::arg("replace_hint") = "replace=True", py::arg("base_index") = 0, py::arg("mlock") = cbuf::Feature::kOff,
           py::arg("huge_pages") = cbuf::Feature::kOff, py::arg("prefault") = false)
      // RawProducer::memory: what mlock and huge pages actually gave.
      .def_property_readonly("memory", [](const cbuf::RawProducer& p) {
        const cbuf::MemoryReport& r = p.memory();
        py::dict d;
        d["mlocked"] = r.mlocked;
        d["page_size"] = r.page_size;
        d["hugetlbfs"] = r.hugetlbfs;
        d["thp_advised"] = r.thp_advised;
        d["prefaulted"] = r.prefaulted;
        return d;
      })
      .def_property_readonly("closed", [](const cbuf::RawProducer& p) { return !p.is_open(); })
      .def_property_readonly("capacity", &cbuf::RawProducer::capacity)
      .def_property_readonly("row_size", &cbuf::RawProducer::row_size)
      .def_property_readonly("path", &cbuf::RawProducer::path)
      .def_property_readonly("next_index", &cbuf::RawProducer::next_index)
      // RawProducer::write_batch of len(rows) // row_size rows: one head update. Returns the first index.
      .def("write_batch", [](cbuf::RawProducer& p, py::buffer rows) {
        if (!p.is_open()) throw py::value_error("the producer is closed");
        py::buffer_info info = rows.request();
        const auto bytes = static_cast<std::size_t>(info.size * info.itemsize);
        if (bytes % p.row_size() != 0)
          throw py::value_error(std::to_string(bytes) + " bytes is not a whole number of " +
                                std::to_string(p.row_size()) + "-byte rows");
        return copy_maybe_without_gil(bytes, [&] { return p.write_batch(info.ptr, bytes / p.row_size()); });
      }, py::arg("rows"))
      // RawProducer::skip: marks the next `count` rows lost without writing them (format 1.1).
      .def("skip", [](cbuf::RawProducer& p, std::uint64_t count) {
        if (!p.is_open()) throw py::value_error("the producer is closed");
        return p.skip(count);
      }, py::arg("count"))
      .def("close", &cbuf::RawProducer::close);
}

}  // namespace cbuf_py
