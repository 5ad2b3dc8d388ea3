// cbuf_roundtrip_<schema> PATH ROWS: writes ROWS rows of the test value pattern (roundtrip_values.hpp) with the
// generated producer, reads them back with the generated consumer and compares byte for byte, then closes the
// buffer and keeps the file for a Python reader to check. Exit 0 when every row matched.
// cbuf_roundtrip_<schema> PATH ROWS check: only the consumer side, on a buffer another program (the Python
// producer) wrote with the same pattern.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include CBUF_SCHEMA_HEADER
#include "roundtrip_values.hpp"

namespace schema = CBUF_SCHEMA_NS;

int main(int argc, char** argv) {
  if (argc != 3 && !(argc == 4 && std::string(argv[3]) == "check")) {
    std::fprintf(stderr, "usage: %s PATH ROWS [check]\n", argv[0]);
    return 2;
  }
  const std::string path = argv[1];
  const std::uint64_t rows = std::strtoull(argv[2], nullptr, 10);
  const bool check_only = argc == 4;
  try {
    std::optional<schema::Producer> p;
    if (!check_only) p.emplace(schema::default_options().name(path).capacity(rows));
    schema::Consumer c(path);  // refuses a buffer of another schema (fingerprint)
    for (std::uint64_t i = 0; i < rows && p; ++i) {
      schema::Row r{};
      schema::visit_fields(r, cbuf_test::Filler{i});
      p->write(r);
    }
    int bad = 0;
    for (std::uint64_t i = 0; i < rows; ++i) {
      schema::Row expected{}, got{};
      schema::visit_fields(expected, cbuf_test::Filler{i});
      if (c.read(i, got) != cbuf::ReadStatus::kOk || std::memcmp(&expected, &got, sizeof got) != 0) {
        std::fprintf(stderr, "row %llu differs\n", static_cast<unsigned long long>(i));
        ++bad;
      }
    }
    if (p) p->close();
    std::printf("%s: %llu rows written and read back, %d mismatched\n", path.c_str(),
                static_cast<unsigned long long>(rows), bad);
    return bad ? 1 : 0;
  } catch (const cbuf::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
