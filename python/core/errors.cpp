// cbuf._core exceptions: the cbuf.Error hierarchy, created here once at import and raised for every
// cbuf::Error the runtime throws. cbuf.errors re-exports them under the documented names; each has the
// message, `code` (the runtime's code name, e.g. "bad_magic") and `path`.
#include "core.hpp"

#include <pybind11/eval.h>

#include <string>

namespace cbuf_py {
namespace {

struct Classes {  // strong references, kept for the life of the process (the translator needs them)
  PyObject* error = nullptr;
  PyObject* not_found = nullptr;
  PyObject* permission = nullptr;
  PyObject* format = nullptr;
  PyObject* not_published = nullptr;
  PyObject* not_live = nullptr;
  PyObject* schema_mismatch = nullptr;
  PyObject* exists = nullptr;
};
Classes* classes = nullptr;

PyObject* class_for(cbuf::Errc c) {
  switch (c) {
    case cbuf::Errc::kNotFound: return classes->not_found;
    case cbuf::Errc::kPermission: return classes->permission;
    case cbuf::Errc::kNotRegularFile:
    case cbuf::Errc::kSymlink:
    case cbuf::Errc::kEmptyFile:
    case cbuf::Errc::kTruncated:
    case cbuf::Errc::kBadMagic:
    case cbuf::Errc::kUnsupportedVersion:
    case cbuf::Errc::kCorruptHeader:
    case cbuf::Errc::kBadSchemaJson: return classes->format;
    case cbuf::Errc::kNotPublished: return classes->not_published;
    case cbuf::Errc::kNotLive: return classes->not_live;
    case cbuf::Errc::kSchemaMismatch: return classes->schema_mismatch;
    case cbuf::Errc::kExists: return classes->exists;
    default: return classes->error;
  }
}

// A new exception class cbuf.errors.NAME with these bases, registered in m.
PyObject* make_class(py::module_& m, const char* name, py::tuple bases, const char* doc) {
  py::dict body;
  body["__module__"] = "cbuf.errors";  // the module users import it from (it re-exports these)
  body["__doc__"] = doc;
  py::object cls = py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(&PyType_Type))(name, bases, body);
  m.attr(name) = cls;
  return cls.release().ptr();  // kept (Classes)
}

}  // namespace

void bind_errors(py::module_& m) {
  classes = new Classes;
  auto base = [](PyObject* p) { return py::handle(p); };
  // Error(message, code="", path=""), defined by its source here (an __init__ is simplest said in Python); its
  // subclasses inherit the __init__ (those of OSError too: they take their arguments from it rather than as
  // errno, strerror, filename).
  py::dict ns;
  ns["__name__"] = "cbuf.errors";  // the module users import it from (it re-exports these)
  py::exec(R"(
class Error(Exception):
    """Base of all cbuf errors. `code` is the runtime's error code name (e.g. "bad_magic"), `path` the buffer."""

    def __init__(self, message, code="", path=""):
        super().__init__(message)
        self.code = code
        self.path = path
)", ns);
  py::object error = ns["Error"];
  m.attr("Error") = error;
  classes->error = py::object(error).release().ptr();
  classes->not_found = make_class(m, "NotFoundError", py::make_tuple(error, base(PyExc_FileNotFoundError)),
                                  "No buffer at that name or path.");
  classes->permission = make_class(m, "PermissionDeniedError", py::make_tuple(error, base(PyExc_PermissionError)),
                                   "The OS refused access; consumers need read permission on the file.");
  classes->format = make_class(m, "FormatError", py::make_tuple(error),
                               "Not a cbuf buffer, a damaged one, or a format version this reader does not know.");
  classes->not_published =
      make_class(m, "NotPublishedError", py::make_tuple(base(classes->format)),
                 "The header was never published: the producer is still creating it, or died while doing so.");
  classes->not_live =
      make_class(m, "NotLiveError", py::make_tuple(error),
                 "live=True: the name held a closed or dead buffer, and no live producer replaced it in time.");
  classes->schema_mismatch = make_class(m, "SchemaMismatchError", py::make_tuple(error),
                                        "The buffer holds rows of another schema than the reader expects.");
  classes->exists = make_class(m, "BufferExistsError", py::make_tuple(error, base(PyExc_FileExistsError)),
                               "A buffer of that name exists already.");

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const cbuf::Error& e) {
      py::object exc = py::handle(class_for(e.code()))(e.what(), std::string(cbuf::to_string(e.code())), e.path());
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
    }
  });
}

}  // namespace cbuf_py
