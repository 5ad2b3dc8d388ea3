// cbuf/fields.hpp - field metadata that generated code emits, so generic code can visit any row's columns.
#pragma once

#include <cstddef>
#include <string_view>

namespace cbuf {

struct FieldInfo {
  std::string_view name;  // column name as in the schema
  std::string_view type;  // canonical schema type: "float32[3]", "string[16]", "timestamp_ns", ...
  std::string_view unit;  // "" when none
  std::string_view doc;   // "" when none
  std::size_t offset;     // byte offset in the row (== offsetof)
  std::size_t size;       // bytes
};

}  // namespace cbuf
