// cbuf/fields.hpp - field metadata that generated code emits, so generic code can visit any row's columns.
#pragma once

#include <algorithm>
#include <array>
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

// string[N] columns are std::array<char, N>: NUL-padded, with no terminator when the value fills all N bytes.
// Stores `value`, truncated to N bytes, and pads the rest with NULs. Returns false if it had to truncate.
template <std::size_t N>
constexpr bool set_string(std::array<char, N>& field, std::string_view value) noexcept {
  const std::size_t n = std::min(N, value.size());
  std::copy_n(value.data(), n, field.data());
  std::fill(field.begin() + static_cast<std::ptrdiff_t>(n), field.end(), '\0');
  return n == value.size();
}

// The value of a string[N] column: the bytes before the first NUL, or all N bytes.
template <std::size_t N>
constexpr std::string_view get_string(const std::array<char, N>& field) noexcept {
  const auto end = std::find(field.begin(), field.end(), '\0');
  return std::string_view(field.data(), static_cast<std::size_t>(end - field.begin()));
}

}  // namespace cbuf
