// Contract tests for format.hpp (layout planning, header validation) and the bounded schema JSON parser.
#include "common.hpp"

using namespace cbuf;

namespace {
Header valid_header(std::uint64_t* file_size) {
  const Layout l = plan_layout("p", 100, 64, 30, 4096);
  Header h{};
  h.magic = kMagic;
  h.version_major = kFormatMajor;
  h.version_minor = kFormatMinor;
  h.header_size = kHeaderSize;
  h.file_size = l.file_size;
  h.data_offset = l.data_offset;
  h.capacity = l.capacity;
  h.slot_size = l.slot_size;
  h.row_size = l.row_size;
  h.schema_offset = l.schema_offset;
  h.schema_size = l.schema_size;
  h.page_size = l.page_size;
  *file_size = l.file_size;
  return h;
}

Errc code_of(const Header& h, std::uint64_t file_size) {
  try {
    validate_header(h, file_size, "p");
  } catch (const Error& e) {
    return e.code();
  }
  FAIL("validate_header accepted a bad header");
  return Errc::kSystem;
}
}  // namespace

TEST_CASE("plan_layout: slots, schema and data area", "[format]") {
  const Layout l = plan_layout("p", 1000, 64, 100, 4096);
  CHECK(l.slot_size == 72);  // 8-byte sequence word + 64-byte row
  CHECK(l.schema_offset == kHeaderSize);
  CHECK(l.data_offset == 4096);
  CHECK(l.file_size == 4096 + 73728);  // 1000 * 72 = 72000, rounded up to pages
  CHECK(slot_size_for(1) == 16);
  CHECK(slot_size_for(8) == 16);
  CHECK(slot_size_for(9) == 24);
  // A schema that crosses a page pushes the data area to the next page.
  CHECK(plan_layout("p", 1, 8, 4000, 4096).data_offset == 8192);
}

TEST_CASE("plan_layout: refuses bad arguments", "[format]") {
  CHECK_THROWS_AS(plan_layout("p", 0, 8, 0, 4096), Error);
  CHECK_THROWS_AS(plan_layout("p", kMaxCapacity + 1, 8, 0, 4096), Error);
  CHECK_THROWS_AS(plan_layout("p", 1, 0, 0, 4096), Error);
  CHECK_THROWS_AS(plan_layout("p", 1, kMaxRowSize + 1, 0, 4096), Error);
  CHECK_THROWS_AS(plan_layout("p", 1, 8, kMaxSchemaSize + 1, 4096), Error);
  try {
    plan_layout("/dev/shm/x", 0, 8, 0, 4096);
  } catch (const Error& e) {
    CHECK(e.code() == Errc::kInvalidArgument);
    CHECK(std::string(e.what()).find("/dev/shm/x") != std::string::npos);
    CHECK(std::string(e.what()).find("capacity") != std::string::npos);
  }
}

TEST_CASE("validate_header: accepts a good header and a newer minor version", "[format]") {
  std::uint64_t size = 0;
  Header h = valid_header(&size);
  CHECK(validate_header(h, size, "p").capacity == 100);
  h.version_minor = kFormatMinor + 7;  // appended fields only: still readable
  CHECK_NOTHROW(validate_header(h, size, "p"));
  CHECK_NOTHROW(validate_header(h, size + 4096, "p"));  // a longer file is fine
}

TEST_CASE("validate_header: every inconsistency is refused with its own code", "[format]") {
  std::uint64_t size = 0;
  const Header good = valid_header(&size);
  Header h = good;
  h.version_major = 2;
  CHECK(code_of(h, size) == Errc::kUnsupportedVersion);
  h = good;
  CHECK(code_of(h, size - 1) == Errc::kTruncated);
  h = good;
  h.capacity = 0;
  CHECK(code_of(h, size) == Errc::kCorruptHeader);
  h = good;
  h.capacity = (1ull << 40);  // capacity x slot_size runs far past the file
  CHECK(code_of(h, size) == Errc::kCorruptHeader);
  h = good;
  h.capacity = 1ull << 62;  // beyond the capacity limit, and the product would overflow
  CHECK(code_of(h, size) == Errc::kCorruptHeader);
  h = good;
  h.slot_size = 64;  // < 8 + row_size
  CHECK(code_of(h, size) == Errc::kCorruptHeader);
  h = good;
  h.slot_size = 77;  // not a multiple of 8
  CHECK(code_of(h, size) == Errc::kCorruptHeader);
  h = good;
  h.data_offset = 100;  // not page aligned
  CHECK(code_of(h, size) == Errc::kCorruptHeader);
  h = good;
  h.data_offset = ~0ull & ~4095ull;  // overflows data_offset + data bytes
  CHECK(code_of(h, size) == Errc::kCorruptHeader);
  h = good;
  h.schema_size = 5000;  // past data_offset
  CHECK(code_of(h, size) == Errc::kCorruptHeader);
  h = good;
  h.schema_offset = ~0ull - 2;  // offset + size overflows
  CHECK(code_of(h, size) == Errc::kCorruptHeader);
  h = good;
  h.schema_offset = 100;  // inside the fixed header
  CHECK(code_of(h, size) == Errc::kCorruptHeader);
  h = good;
  h.schema_size = kMaxSchemaSize + 1;
  CHECK(code_of(h, size) == Errc::kCorruptHeader);
  h = good;
  h.header_size = 100;
  CHECK(code_of(h, size) == Errc::kCorruptHeader);
  h = good;
  h.page_size = 1000;
  CHECK(code_of(h, size) == Errc::kCorruptHeader);
}

TEST_CASE("schema JSON: depth is measured outside strings, limits enforced", "[format]") {
  CHECK(detail::json_depth(R"({"a":[1,{"b":"[[[["}]})") == 3);
  CHECK(detail::json_depth(R"({"a":"\"{"})") == 1);
  CHECK(detail::json_depth("}{") == -1);
  CHECK(detail::json_depth("{{}") == -1);
  CHECK_NOTHROW(detail::parse_schema_json(R"({"name":"x","columns":[]})", "p"));
  const std::string deep = std::string(1000, '[') + std::string(1000, ']');
  CHECK_THROWS_AS(detail::parse_schema_json(deep, "p"), Error);
  CHECK_THROWS_AS(detail::parse_schema_json("{\"a\":", "p"), Error);
  CHECK_THROWS_AS(detail::parse_schema_json("[1,2]", "p"), Error);
}
