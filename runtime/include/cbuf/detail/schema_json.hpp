// cbuf/detail/schema_json.hpp - bounded parsing of the schema JSON embedded in a buffer file.
// The file is untrusted: the text is size-limited by the header check, its nesting depth is measured before
// the parser sees it (so no recursion can run deep), and only then is it parsed.
#pragma once

#include <array>
#include <set>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cbuf/error.hpp"

namespace cbuf::detail {

inline constexpr int kMaxSchemaDepth = 32;
// The field the cbuf tools write beside the columns (tail --csv/--json, MCAP, Foxglove): no column takes it.
inline constexpr std::string_view kToolColumnName = "row_index";

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
  // RFC 8259 forbids a byte-order mark in JSON text, and other readers (Python's json) refuse one: so does cbuf,
  // rather than accept a file some readers cannot read.
  if (text.substr(0, 3) == "\xEF\xBB\xBF")
    throw Error(Errc::kBadSchemaJson, path,
                "embedded schema JSON starts with a UTF-8 byte-order mark, which JSON does not allow; recreate the "
                "buffer with a schema saved without a BOM");
  if (const auto nul = text.find('\0'); nul != std::string_view::npos)  // a reader stopping there saw another schema
    throw Error(Errc::kBadSchemaJson, path,
                "embedded schema JSON holds a NUL byte at offset " + std::to_string(nul) +
                    ", which JSON text never does; the file is damaged or not written by cbuf - recreate the buffer");
  const int depth = json_depth(text);
  if (depth > kMaxSchemaDepth)
    throw Error(Errc::kBadSchemaJson, path,
                "embedded schema JSON nests " + std::to_string(depth) + " levels deep (limit " +
                    std::to_string(kMaxSchemaDepth) + "); the file is damaged or not written by cbuf - recreate the buffer");
  // A key twice in one object: JSON parsers disagree on which one counts (the first, the last, an error), so
  // two readers could see two schemas in one file - refused (docs/format.md section 3).
  std::vector<std::set<std::string>> keys;  // of each object being parsed
  std::string duplicate;
  auto on_event = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start) {
      keys.emplace_back();
    } else if (event == E::object_end) {
      keys.pop_back();
    } else if (event == E::key && !keys.empty() && !keys.back().insert(parsed.get<std::string>()).second &&
               duplicate.empty()) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), on_event, /*allow_exceptions=*/false);
  if (j.is_discarded() || depth < 0)
    throw Error(Errc::kBadSchemaJson, path,
                "embedded schema JSON is malformed; the file is damaged or not written by cbuf - recreate the buffer");
  if (!duplicate.empty())
    throw Error(Errc::kBadSchemaJson, path,
                "embedded schema JSON has the key \"" + duplicate + "\" twice in one object; the file is damaged or "
                "not written by cbuf - recreate the buffer");
  if (!j.is_object())
    throw Error(Errc::kBadSchemaJson, path, "embedded schema JSON is not an object; recreate the buffer with a valid schema");
  return j;
}

// A column of the embedded schema, checked against the row: what a reader needs to decode it.
struct ColumnLayout {
  std::string name;
  std::string type;         // as written in the schema: "float32[3]", "string[16]"
  std::string numpy;        // NumPy format of one element: "<f4", "?", "S16"
  std::uint32_t count = 0;  // array length; 0 for a scalar or a string
  std::uint64_t offset = 0;
  std::uint64_t size = 0;   // bytes in the row
};

// The scalar types of the schema language with their size and NumPy format (docs/schema.md).
struct ScalarInfo {
  std::string_view name;
  std::uint32_t size;
  std::string_view numpy;
};
inline constexpr std::array<ScalarInfo, 12> kScalarTypes{{
    {"bool", 1, "?"}, {"int8", 1, "<i1"}, {"int16", 2, "<i2"}, {"int32", 4, "<i4"}, {"int64", 8, "<i8"},
    {"uint8", 1, "<u1"}, {"uint16", 2, "<u2"}, {"uint32", 4, "<u4"}, {"uint64", 8, "<u8"},
    {"float32", 4, "<f4"}, {"float64", 8, "<f8"}, {"timestamp_ns", 8, "<i8"},
}};
inline constexpr std::uint32_t kMaxArrayLength = 65536;  // elements of T[N], bytes of string[N]
inline constexpr std::size_t kMaxColumnName = 256;

// "N" of "T[N]": 1..kMaxArrayLength, decimal digits, no sign, no leading zero; 0 if malformed.
inline std::uint32_t parse_length(std::string_view digits) noexcept {
  if (digits.empty() || digits.size() > 6 || digits[0] == '0') return 0;
  std::uint32_t n = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return 0;
    n = n * 10 + static_cast<std::uint32_t>(c - '0');
  }
  return n <= kMaxArrayLength ? n : 0;
}

// Checks the columns of an embedded schema against the row size from the header: every column an object with
// a unique non-empty name, a known type and an offset, lying inside the row. This is the one check every
// reader relies on (Python builds its dtype from the result). Throws kBadSchemaJson naming the column.
inline std::vector<ColumnLayout> schema_columns(const nlohmann::json& schema, std::uint64_t row_size,
                                                const std::string& path) {
  auto bad = [&](const std::string& where, const std::string& what) {
    return Error(Errc::kBadSchemaJson, path,
                 "embedded schema " + where + " " + what + "; the file is damaged or not written by cbuf - recreate "
                 "the buffer with a current producer");
  };
  const auto cols = schema.find("columns");
  if (cols == schema.end() || !cols->is_array()) throw bad("/columns", "is missing or not an array");
  // The layout was computed for the schema's row size: one for another row is not this file's (format.md 7).
  if (const auto rs = schema.find("row_size");
      rs != schema.end() && (!rs->is_number_unsigned() || rs->get<std::uint64_t>() != row_size))
    throw bad("/row_size", rs->dump() + " is not the header's row_size " + std::to_string(row_size));
  std::vector<ColumnLayout> out;
  out.reserve(cols->size());
  for (std::size_t i = 0; i < cols->size(); ++i) {
    const nlohmann::json& c = (*cols)[i];
    const std::string where = "/columns/" + std::to_string(i);
    if (!c.is_object()) throw bad(where, "is not an object");
    const auto name = c.find("name"), type = c.find("type"), offset = c.find("offset");
    if (name == c.end() || !name->is_string() || name->get_ref<const std::string&>().empty() ||
        name->get_ref<const std::string&>().size() > kMaxColumnName)
      throw bad(where + "/name", "is not a name (a string of 1-" + std::to_string(kMaxColumnName) + " bytes)");
    if (type == c.end() || !type->is_string()) throw bad(where + "/type", "is not a type string");
    if (offset == c.end() || !offset->is_number_unsigned())
      throw bad(where + "/offset", "is missing or not a non-negative integer");
    ColumnLayout col;
    col.name = name->get<std::string>();
    col.type = type->get<std::string>();
    col.offset = offset->get<std::uint64_t>();
    for (const ColumnLayout& prev : out)
      if (prev.name == col.name) throw bad(where + "/name", "'" + col.name + "' repeats an earlier column's name");
    if (col.name == kToolColumnName)  // codegen's names.py TOOL_COLUMN_NAMES says the same
      throw bad(where + "/name", "'" + col.name + "' is the field the cbuf tools add for the row's index");
    std::string_view t = col.type, base = t;
    std::uint32_t n = 0;
    if (const auto open = t.find('['); open != std::string_view::npos) {
      if (t.back() != ']' || (n = parse_length(t.substr(open + 1, t.size() - open - 2))) == 0)
        throw bad(where + "/type", "'" + col.type + "' has no valid length (T[N], N = 1.." + std::to_string(kMaxArrayLength) + ")");
      base = t.substr(0, open);
    }
    if (base == "string") {
      if (n == 0) throw bad(where + "/type", "'string' needs a length: string[N]");
      col.numpy = "S" + std::to_string(n);
      col.size = n;
    } else {
      const ScalarInfo* info = nullptr;
      for (const ScalarInfo& s : kScalarTypes)
        if (s.name == base) info = &s;
      if (info == nullptr) throw bad(where + "/type", "'" + col.type + "' is not a cbuf column type");
      col.numpy = std::string(info->numpy);
      col.count = n;
      col.size = std::uint64_t{info->size} * (n == 0 ? 1 : n);
    }
    if (col.offset > row_size || col.size > row_size - col.offset)
      throw bad(where + "/offset", std::to_string(col.offset) + " + " + std::to_string(col.size) +
                                       " bytes runs past the " + std::to_string(row_size) + "-byte row");
    out.push_back(std::move(col));
  }
  return out;
}

// What differs between two column lists, for schema-mismatch messages: "column 'x' (float32 @12) added;
// column 'y' (uint8 @0) removed; column 'z' float32 @8 -> float64 @8". Empty when the columns are the same.
inline std::string describe_column_changes(const std::vector<ColumnLayout>& expected,
                                           const std::vector<ColumnLayout>& found) {
  auto find = [](const std::vector<ColumnLayout>& v, const std::string& name) -> const ColumnLayout* {
    for (const ColumnLayout& c : v)
      if (c.name == name) return &c;
    return nullptr;
  };
  auto desc = [](const ColumnLayout& c) { return c.type + " @" + std::to_string(c.offset); };
  std::string out;
  auto add = [&](const std::string& part) { out += (out.empty() ? "" : "; ") + part; };
  for (const ColumnLayout& c : found)
    if (const ColumnLayout* e = find(expected, c.name); e == nullptr)
      add("column '" + c.name + "' (" + desc(c) + ") added");
    else if (e->type != c.type || e->offset != c.offset)
      add("column '" + c.name + "' " + desc(*e) + " -> " + desc(c));
  for (const ColumnLayout& e : expected)
    if (find(found, e.name) == nullptr) add("column '" + e.name + "' (" + desc(e) + ") removed");
  return out;
}

}  // namespace cbuf::detail
