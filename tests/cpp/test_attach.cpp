// One test per bad input: each is refused with its own cbuf::Error code and a message naming the path, and
// nothing crashes, blocks or reads outside the mapping.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <vector>

#include "common.hpp"

using namespace cbuf;
using cbuf_test::TempDir;

namespace {

std::vector<char> slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}
void spit(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A valid closed buffer's bytes, for mutation.
std::vector<char> good_file(const TempDir& d, const std::string& schema = R"({"name":"t","columns":[]})") {
  {
    RawProducer p(ProducerOptions().dir(d.path()).name("good").capacity(16).schema_json(schema), 32);
    std::byte row[32] = {};
    p.write(row);
  }
  auto bytes = slurp(d / "good");
  std::filesystem::remove(d / "good");
  return bytes;
}

Header& header_of(std::vector<char>& bytes) { return *reinterpret_cast<Header*>(bytes.data()); }

// Attaches and returns the error; fails the test if attaching succeeds.
Error attach_error(const std::string& path, ConsumerOptions o = ConsumerOptions()) {
  try {
    RawConsumer c(path, o);
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find(path) != std::string::npos);  // every message names the path
    return e;
  }
  FAIL("attach succeeded on a bad file: " << path);
  return Error(Errc::kSystem, "", "");
}

Errc mutated(const TempDir& d, const std::function<void(std::vector<char>&)>& mutate) {
  auto bytes = good_file(d);
  mutate(bytes);
  spit(d / "bad", bytes);
  return attach_error(d / "bad").code();
}

}  // namespace

TEST_CASE("bad input: missing path", "[attach]") {
  TempDir d;
  const Error e = attach_error(d / "nope");
  CHECK(e.code() == Errc::kNotFound);
  CHECK(std::string(e.what()).find("cbuf ls") != std::string::npos);  // and a way forward
}

TEST_CASE("bad input: a directory", "[attach]") {
  TempDir d;
  std::filesystem::create_directory(d / "dir");
  CHECK(attach_error(d / "dir").code() == Errc::kNotRegularFile);
}

TEST_CASE("bad input: a FIFO is refused without blocking", "[attach]") {
  TempDir d;
  REQUIRE(::mkfifo((d / "fifo").c_str(), 0600) == 0);
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(attach_error(d / "fifo").code() == Errc::kNotRegularFile);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
}

TEST_CASE("bad input: a symlink is never followed", "[attach]") {
  TempDir d;
  spit(d / "target", good_file(d));
  std::filesystem::create_symlink(d / "target", d / "link");
  CHECK(attach_error(d / "link").code() == Errc::kSymlink);
  CHECK_NOTHROW(RawConsumer(d / "target"));
}

TEST_CASE("bad input: an empty file", "[attach]") {
  TempDir d;
  spit(d / "empty", {});
  CHECK(attach_error(d / "empty").code() == Errc::kEmptyFile);
}

TEST_CASE("bad input: shorter than the fixed header", "[attach]") {
  TempDir d;
  auto bytes = good_file(d);
  bytes.resize(100);
  spit(d / "short", bytes);
  CHECK(attach_error(d / "short").code() == Errc::kTruncated);
}

TEST_CASE("bad input: a file shorter than its header says", "[attach]") {
  TempDir d;
  auto bytes = good_file(d);
  bytes.resize(bytes.size() - 4096);
  spit(d / "trunc", bytes);
  CHECK(attach_error(d / "trunc").code() == Errc::kTruncated);
}

TEST_CASE("bad input: wrong magic", "[attach]") {
  TempDir d;
  CHECK(mutated(d, [](auto& b) { std::memcpy(b.data(), "NOTCBUF!", 8); }) == Errc::kBadMagic);
  spit(d / "text", std::vector<char>(4096, 'x'));
  CHECK(attach_error(d / "text").code() == Errc::kBadMagic);
}

TEST_CASE("bad input: a newer major version", "[attach]") {
  TempDir d;
  auto bytes = good_file(d);
  header_of(bytes).version_major = 2;
  spit(d / "v2", bytes);
  const Error e = attach_error(d / "v2");
  CHECK(e.code() == Errc::kUnsupportedVersion);
  CHECK(std::string(e.what()).find("2." + std::to_string(kFormatMinor)) != std::string::npos);
}

TEST_CASE("bad input: a newer minor version is still read", "[attach]") {
  TempDir d;
  auto bytes = good_file(d);
  header_of(bytes).version_minor = 9;
  spit(d / "v19", bytes);
  CHECK(RawConsumer(d / "v19").capacity() == 16);
}

TEST_CASE("bad input: capacity x slot size overflowing", "[attach]") {
  TempDir d;
  CHECK(mutated(d, [](auto& b) { header_of(b).capacity = 1ull << 39; }) == Errc::kCorruptHeader);
  CHECK(mutated(d, [](auto& b) {
          header_of(b).capacity = kMaxCapacity;
          header_of(b).slot_size = 0xFFFFFFF8u;  // product > 2^64 in the unchecked form
        }) == Errc::kCorruptHeader);
}

TEST_CASE("bad input: schema offset or length beyond the file", "[attach]") {
  TempDir d;
  CHECK(mutated(d, [](auto& b) { header_of(b).schema_size = 1u << 19; }) == Errc::kCorruptHeader);
  CHECK(mutated(d, [](auto& b) { header_of(b).schema_offset = 1ull << 40; }) == Errc::kCorruptHeader);
  CHECK(mutated(d, [](auto& b) { header_of(b).schema_offset = ~0ull - 4; }) == Errc::kCorruptHeader);
}

TEST_CASE("bad input: malformed schema JSON", "[attach]") {
  TempDir d;
  CHECK(mutated(d, [](auto& b) { b[kHeaderSize] = 'x'; }) == Errc::kBadSchemaJson);
}

TEST_CASE("bad input: absurdly large schema JSON", "[attach]") {
  TempDir d;
  CHECK(mutated(d, [](auto& b) { header_of(b).schema_size = kMaxSchemaSize + 8; }) == Errc::kCorruptHeader);
}

TEST_CASE("bad input: absurdly deep schema JSON", "[attach]") {
  TempDir d;
  // Build a file whose embedded JSON is 10 000 levels deep (the producer itself refuses to write it).
  auto bytes = good_file(d, std::string(R"({"columns":[],"x":")") + std::string(20000, ' ') + "\"}");
  std::string deep = "{\"x\":" + std::string(10000, '[') + std::string(10000, ']') + "}";
  deep.resize(header_of(bytes).schema_size, ' ');
  std::memcpy(bytes.data() + kHeaderSize, deep.data(), deep.size());
  spit(d / "deep", bytes);
  const Error e = attach_error(d / "deep");
  CHECK(e.code() == Errc::kBadSchemaJson);
  CHECK(std::string(e.what()).find("levels deep") != std::string::npos);
}

TEST_CASE("bad input: the producer refuses to embed a schema readers would refuse", "[attach]") {
  TempDir d;
  CHECK_THROWS_AS(RawProducer(ProducerOptions().dir(d.path()).name("x").schema_json("{not json"), 8), Error);
  CHECK_FALSE(std::filesystem::exists(d / "x"));
}

TEST_CASE("bad input: a header never published: bounded wait, then a clear error", "[attach]") {
  TempDir d;
  auto bytes = good_file(d);
  header_of(bytes).magic = 0;
  spit(d / "unpub", bytes);
  const auto t0 = std::chrono::steady_clock::now();
  const Error e = attach_error(d / "unpub", ConsumerOptions().attach_timeout(std::chrono::milliseconds(200)));
  const auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(e.code() == Errc::kNotPublished);
  CHECK(waited >= std::chrono::milliseconds(200));
  CHECK(waited < std::chrono::seconds(5));
}

TEST_CASE("bad input: creating a buffer whose name exists names the holder", "[attach]") {
  TempDir d;
  Producer<std::uint64_t> first(ProducerOptions().dir(d.path()).name("taken").capacity(4));
  try {
    Producer<std::uint64_t> second(ProducerOptions().dir(d.path()).name("taken").capacity(4));
    FAIL("second producer created");
  } catch (const Error& e) {
    const std::string w = e.what();
    CHECK(e.code() == Errc::kExists);
    CHECK(w.find(d / "taken") != std::string::npos);
    CHECK(w.find("pid " + std::to_string(::getpid())) != std::string::npos);
    CHECK(w.find("live") != std::string::npos);
  }
  // A plain file or a planted symlink at the name: refused, nothing written through it.
  spit(d / "plain", {'h', 'i'});
  std::filesystem::create_symlink(d / "victim", d / "planted");
  CHECK_THROWS_AS(Producer<std::uint64_t>(ProducerOptions().dir(d.path()).name("plain")), Error);
  CHECK_THROWS_AS(Producer<std::uint64_t>(ProducerOptions().dir(d.path()).name("planted")), Error);
  CHECK(slurp(d / "plain") == std::vector<char>{'h', 'i'});
  CHECK_FALSE(std::filesystem::exists(d / "victim"));
}

TEST_CASE("bad input: invalid names and a missing directory", "[attach]") {
  TempDir d;
  for (const std::string& name : std::vector<std::string>{".hidden", "a b", "semi;colon", std::string(201, 'n')}) {
    INFO(name);
    try {
      Producer<std::uint64_t> p(ProducerOptions().dir(d.path()).name(name));
      FAIL("accepted a bad name");
    } catch (const Error& e) {
      CHECK(e.code() == Errc::kInvalidArgument);
    }
  }
  try {
    Producer<std::uint64_t> p(ProducerOptions().dir(d / "missing").name("x"));
    FAIL("created in a missing directory");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::kNotFound);
    CHECK(std::string(e.what()).find("does not exist") != std::string::npos);
  }
}
