// cbuf/detail/schema_json.hpp - bounded parsing of the schema JSON embedded in a buffer file.
// The file is untrusted: the text is size-limited by the header check, its nesting depth is measured before
// the parser sees it (so no recursion can run deep), and only then is it parsed.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "cbuf/error.hpp"

namespace cbuf::detail {

inline constexpr int kMaxSchemaDepth = 32;

// Deepest [ / { nesting outside of strings; -1 if brackets do not balance.
inline int json_depth(std::string_view s) noexcept {
  int depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : s) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') max_depth = std::max(max_depth, ++depth);
    else if (c == ']' || c == '}') {
      if (--depth < 0) return -1;
    }
  }
  return depth == 0 ? max_depth : -1;
}

// Parses the embedded schema; throws kBadSchemaJson naming the path. Returns the JSON value.
inline nlohmann::json parse_schema_json(std::string_view text, const std::string& path) {
  const int depth = json_depth(text);
  if (depth > kMaxSchemaDepth)
    throw Error(Errc::kBadSchemaJson, path,
                "embedded schema JSON nests " + std::to_string(depth) + " levels deep (limit " +
                    std::to_string(kMaxSchemaDepth) + "); the file is damaged or not written by cbuf - recreate the buffer");
  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || depth < 0)
    throw Error(Errc::kBadSchemaJson, path,
                "embedded schema JSON is malformed; the file is damaged or not written by cbuf - recreate the buffer");
  if (!j.is_object())
    throw Error(Errc::kBadSchemaJson, path, "embedded schema JSON is not an object; recreate the buffer with a valid schema");
  return j;
}

}  // namespace cbuf::detail
