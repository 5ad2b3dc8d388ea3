// cbuf._core module: the runtime's facts (one owner: the Python package asks instead of restating them), its
// enums, its free functions, and the parts in the other files of this folder (core.hpp lists them).
#include "core.hpp"

#include <string>
#include <vector>

namespace cbuf_py {

void bind_enums(py::module_& m) {
  // Python enum.Enum classes (py::native_enum). Member names are the strings the Python API documents
  // (cbuf.Reader(start="oldest"), wait(idle="block")): cbuf._enums.choice() turns one into the other.
  py::native_enum<cbuf::Start>(m, "Start", "enum.Enum")
      .value("oldest", cbuf::Start::kOldest)
      .value("newest", cbuf::Start::kNewest)
      .value("end", cbuf::Start::kEnd)
      .value("index", cbuf::Start::kIndex)
      .finalize();
  py::native_enum<cbuf::Idle>(m, "Idle", "enum.Enum")
      .value("block", cbuf::Idle::kBlock)
      .value("spin", cbuf::Idle::kBusySpin)
      .value("yield", cbuf::Idle::kSpinThenYield)
      .value("sleep", cbuf::Idle::kBackoffSleep)
      .finalize();
  py::native_enum<cbuf::Feature>(m, "Feature", "enum.Enum")
      .value("off", cbuf::Feature::kOff)
      .value("try", cbuf::Feature::kTry)
      .value("require", cbuf::Feature::kRequire)
      .finalize();
  py::native_enum<cbuf::OnClose>(m, "OnClose", "enum.Enum")
      .value("keep", cbuf::OnClose::kKeep)
      .value("unlink", cbuf::OnClose::kUnlink)
      .finalize();
  py::native_enum<cbuf::IfExists>(m, "IfExists", "enum.Enum")
      .value("fail", cbuf::IfExists::kFail)
      .value("replace", cbuf::IfExists::kReplace)
      .finalize();
  py::native_enum<cbuf::ProducerState>(m, "ProducerState", "enum.Enum")
      .value("live", cbuf::ProducerState::kLive)
      .value("closed", cbuf::ProducerState::kClosed)
      .value("dead", cbuf::ProducerState::kDead)
      .value("replaced", cbuf::ProducerState::kReplaced)
      .finalize();
}

}  // namespace cbuf_py

PYBIND11_MODULE(_core, m) {
  namespace py = pybind11;
  m.doc() = "cbuf runtime bindings (private: use the cbuf package)";
  m.attr("VERSION") = CBUF_VERSION;  // the project's (codegen/cbuf_codegen/VERSION, through CMake)
  m.attr("ABI_VERSION") = cbuf::kAbiVersion;
  m.attr("FORMAT_VERSION") = py::make_tuple(cbuf::kFormatMajor, cbuf::kFormatMinor);
  m.attr("HEADER_SIZE") = cbuf::kHeaderSize;
  m.attr("SEQ_SIZE") = cbuf::kSeqSize;
  m.attr("MAX_ROW_SIZE") = cbuf::kMaxRowSize;
  m.attr("MAX_CAPACITY") = cbuf::kMaxCapacity;
  m.attr("INDEX_LIMIT") = cbuf::kIndexLimit;
  m.attr("MAX_SCHEMA_SIZE") = cbuf::kMaxSchemaSize;
  m.attr("DEFAULT_PACE_NS") = static_cast<std::uint64_t>(cbuf::kDefaultPace.count());
  py::dict mem_flags;
  mem_flags["mlocked"] = cbuf::kMemMlocked;
  mem_flags["hugetlbfs"] = cbuf::kMemHugetlbfs;
  mem_flags["thp_advised"] = cbuf::kMemThpAdvised;
  mem_flags["prefaulted"] = cbuf::kMemPrefaulted;
  m.attr("MEM_FLAGS") = mem_flags;

  cbuf_py::bind_errors(m);
  cbuf_py::bind_enums(m);
  cbuf_py::bind_reader(m);
  cbuf_py::bind_producer(m);

  m.def("search_dirs", [](const std::string& dir) { return cbuf::os::search_dirs(dir); }, py::arg("dir") = "",
        "The directories a bare buffer name is looked up in: dir, else $CBUF_DIR or /dev/shm, then a hugetlbfs mount.");
  m.def("unlink_if_unheld", [](const std::string& path, std::uint64_t dev, std::uint64_t ino, bool dry_run) {
    py::gil_scoped_release nogil;
    return cbuf::os::unlink_if_unheld(path, static_cast<dev_t>(dev), static_cast<ino_t>(ino), dry_run);
  }, py::arg("path"), py::arg("dev"), py::arg("ino"), py::arg("dry_run") = false,
        "Removes a buffer file if it is still (dev, ino) and no producer holds its lock; True if removed.");

  // The runtime's check of a schema against a row size (the one every reader relies on), for recordings and
  // producers: (the schema re-serialised, its columns as Buffer.columns gives them).
  m.def("check_schema", [](const std::string& schema_json, std::uint64_t row_size, const std::string& where) {
    const nlohmann::json j = cbuf::detail::parse_schema_json(schema_json, where);
    py::list cols;
    for (const auto& c : cbuf::detail::schema_columns(j, row_size, where))
      cols.append(py::make_tuple(c.name, c.type, c.numpy, c.count, c.offset));
    return py::make_tuple(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), cols);
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
  }, py::arg("expected"), py::arg("found"));
}
