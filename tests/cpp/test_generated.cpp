// Generated code: compiles with -Wall -Wextra -Werror -pedantic (this file is built so), its static_asserts
// hold (offsets = the schema model's), values survive a round trip, metadata is right, and a consumer of one
// schema refuses a buffer of another, naming both.
#include <cmath>
#include <cstring>

#include <all_types.hpp>
#include <sensors.hpp>

#include "common.hpp"
#include "roundtrip_values.hpp"

using cbuf_test::TempDir;

TEST_CASE("generated: metadata matches the schema", "[generated]") {
  STATIC_REQUIRE(sensors::kFields.size() == 7);
  CHECK(sensors::kFields[2].name == "channel");
  CHECK(sensors::kFields[2].type == "float32[16]");
  CHECK(sensors::kFields[2].unit == "V");
  CHECK(sensors::kFields[2].offset == offsetof(sensors::Row, channel));
  CHECK(sensors::Row::kDefaultCapacity == 65536);
  CHECK(sensors::Row::kSchemaName == "sensors");
  CHECK(sensors::Row::kFingerprint != all_types::Row::kFingerprint);
  std::size_t total = 0;
  all_types::Row r{};
  all_types::visit_fields(r, [&](const cbuf::FieldInfo& f, auto& member) {
    CHECK(f.size == sizeof(member));
    CHECK(reinterpret_cast<const std::byte*>(&member) - reinterpret_cast<const std::byte*>(&r) ==
          static_cast<std::ptrdiff_t>(f.offset));
    total += f.size;
  });
  CHECK(total <= sizeof(all_types::Row));
}

TEST_CASE("generated: extremes round-trip through a buffer", "[generated]") {
  TempDir d;
  all_types::Producer p(all_types::default_options().dir(d.path()).capacity(64));
  CHECK(p.path() == d / "all_types");  // the schema name is the default buffer name
  all_types::Consumer c(p.path());
  for (std::uint64_t i = 0; i < 40; ++i) {
    all_types::Row r{};
    all_types::visit_fields(r, cbuf_test::Filler{i});
    p.write(r);
  }
  const auto rows = c.last(40);
  REQUIRE(rows.size() == 40);
  for (std::uint64_t i = 0; i < 40; ++i) {
    all_types::Row expected{};
    all_types::visit_fields(expected, cbuf_test::Filler{i});
    CHECK(std::memcmp(&expected, &rows[i], sizeof expected) == 0);
  }
  // The pattern really produced extremes (row i, column k: s = i + k; f32 is column 9, i64 column 1, name 12).
  CHECK(rows[0].f32 == -std::numeric_limits<float>::infinity());  // s = 9, 9 % 7 = 2
  CHECK(std::isnan(rows[5].f32));                                 // s = 14, 14 % 7 = 0
  CHECK(rows[3].f32 == std::numeric_limits<float>::max());        // s = 12, 12 % 7 = 5
  CHECK(rows[4].i64 == std::numeric_limits<std::int64_t>::min()); // s = 5, 5 % 5 = 0
  CHECK(rows[5].i64 == std::numeric_limits<std::int64_t>::max()); // s = 6, 6 % 5 = 1
  CHECK(rows[0].name[15] == 'A' + (12 + 15) % 26);                // s = 12: full length, no NUL
  CHECK(rows[1].name[0] == '\0');                                 // s = 13: empty
}

TEST_CASE("generated: a consumer of another schema is refused, naming both", "[generated]") {
  TempDir d;
  sensors::Producer p(sensors::default_options().dir(d.path()).capacity(8));
  try {
    all_types::Consumer c(p.path());
    FAIL("attached to a buffer of another schema");
  } catch (const cbuf::Error& e) {
    const std::string w = e.what();
    CHECK(e.code() == cbuf::Errc::kSchemaMismatch);
    CHECK(w.find("'sensors'") != std::string::npos);
    CHECK(w.find("'all_types'") != std::string::npos);
    char fp[32];
    std::snprintf(fp, sizeof fp, "0x%016llx", static_cast<unsigned long long>(sensors::Row::kFingerprint));
    CHECK(w.find(fp) != std::string::npos);
    std::snprintf(fp, sizeof fp, "0x%016llx", static_cast<unsigned long long>(all_types::Row::kFingerprint));
    CHECK(w.find(fp) != std::string::npos);
  }
}

TEST_CASE("generated: the embedded schema JSON is the canonical one with offsets", "[generated]") {
  TempDir d;
  sensors::Producer p(sensors::default_options().dir(d.path()).capacity(8));
  cbuf::RawConsumer c(p.path());
  CHECK(c.schema_json() == sensors::Row::kSchemaJson);
  CHECK(c.fingerprint() == sensors::Row::kFingerprint);
  CHECK(c.schema()["row_size"] == sizeof(sensors::Row));
  CHECK(c.schema()["columns"][6]["offset"] == offsetof(sensors::Row, label));
}

TEST_CASE("string columns: set_string pads or truncates, get_string stops at the first NUL", "[generated]") {
  sensors::Row row{};
  row.label.fill('x');
  CHECK(cbuf::set_string(row.label, "run-7"));
  CHECK(cbuf::get_string(row.label) == "run-7");
  CHECK(row.label[5] == '\0');
  CHECK(row.label[11] == '\0');  // the old bytes are gone, not just terminated
  CHECK(cbuf::set_string(row.label, "exactly-12by"));
  CHECK(cbuf::get_string(row.label) == "exactly-12by");  // full: no terminator, all 12 bytes
  CHECK_FALSE(cbuf::set_string(row.label, "thirteen-byte"));
  CHECK(cbuf::get_string(row.label) == "thirteen-byt");
  CHECK(cbuf::set_string(row.label, ""));
  CHECK(cbuf::get_string(row.label).empty());
  static_assert(cbuf::get_string(std::array<char, 3>{'a', '\0', 'b'}) == "a");
}
