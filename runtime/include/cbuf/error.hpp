// cbuf/error.hpp - the one exception type of the runtime.
//
// Every failure outside the hot path is a cbuf::Error carrying a code (for programs) and a message (for
// people) that names the path, the field at fault and what to do about it. The hot path (write, try_read,
// cursors) never throws: it reports through return values.
#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

namespace cbuf {

enum class Errc {
  kNotFound,          // no file at the path
  kNotRegularFile,    // a directory, FIFO, device, socket...
  kSymlink,           // refused: cbuf never follows a symlink at a buffer path
  kEmptyFile,         // zero bytes: not a cbuf buffer (or a creator that died before reserving space)
  kTruncated,         // shorter than its header says
  kBadMagic,          // not a cbuf file
  kUnsupportedVersion,// a major format version this runtime does not read
  kCorruptHeader,     // a size, offset or count that is inconsistent or out of bounds
  kBadSchemaJson,     // embedded schema JSON malformed, too large or too deep
  kNotPublished,      // header never became ready within the attach timeout
  kExists,            // creating a buffer whose name is taken
  kNoSpace,           // the file system cannot reserve the buffer's space
  kPermission,        // the OS refused access
  kInvalidArgument,   // a bad option (capacity 0, bad name, ...)
  kSchemaMismatch,    // row size or schema fingerprint differ from what the typed code expects
  kResource,          // mlock / huge pages / limits
  kIndexLimit,        // a producer reached the largest row index (kIndexLimit): nothing more can be written
  kNotLive,           // ConsumerOptions::wait_live: no live producer held the name within the attach timeout
  kSystem,            // any other OS error
};

// Stable, human-readable name of a code ("not_found"), used in messages and by tools.
constexpr std::string_view to_string(Errc c) noexcept {
  switch (c) {
    case Errc::kNotFound: return "not_found";
    case Errc::kNotRegularFile: return "not_regular_file";
    case Errc::kSymlink: return "symlink";
    case Errc::kEmptyFile: return "empty_file";
    case Errc::kTruncated: return "truncated";
    case Errc::kBadMagic: return "bad_magic";
    case Errc::kUnsupportedVersion: return "unsupported_version";
    case Errc::kCorruptHeader: return "corrupt_header";
    case Errc::kBadSchemaJson: return "bad_schema_json";
    case Errc::kNotPublished: return "not_published";
    case Errc::kExists: return "exists";
    case Errc::kNoSpace: return "no_space";
    case Errc::kPermission: return "permission";
    case Errc::kInvalidArgument: return "invalid_argument";
    case Errc::kSchemaMismatch: return "schema_mismatch";
    case Errc::kResource: return "resource";
    case Errc::kIndexLimit: return "index_limit";
    case Errc::kNotLive: return "not_live";
    case Errc::kSystem: return "system";
  }
  return "unknown";
}

class Error : public std::runtime_error {
 public:
  // what() reads "cbuf: <path>: <message>" (path omitted when empty).
  Error(Errc code, std::string path, const std::string& message)
      : std::runtime_error(format(path, message)), code_(code), path_(std::move(path)) {}

  Errc code() const noexcept { return code_; }
  const std::string& path() const noexcept { return path_; }

 private:
  static std::string format(const std::string& path, const std::string& message) {
    std::string s = "cbuf: ";
    if (!path.empty()) s += path + ": ";
    return s + message;
  }
  Errc code_;
  std::string path_;
};

namespace detail {
// Message fragment for an errno value: "Permission denied (errno 13)".
inline std::string errno_text(int err) {
  return std::string(std::strerror(err)) + " (errno " + std::to_string(err) + ")";
}
}  // namespace detail

}  // namespace cbuf
