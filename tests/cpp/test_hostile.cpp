// Readers survive anything another process does to the file (docs/format.md, "What a reader trusts"):
// a hostile writer rewriting the header, the schema and the sequence words while readers attach and read, and
// the file truncated under readers and producers. Zero crashes (the ASan+UBSan build checks every copy stays
// inside its buffers), zero wrong rows, only clear errors.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <vector>

#include "common.hpp"

using namespace cbuf;
using cbuf_test::CheckedRow;
using cbuf_test::Child;
using cbuf_test::TempDir;

namespace {

constexpr std::uint64_t kCapacity = 64;

// A closed buffer of 3 * kCapacity checksummed rows, so every slot holds a committed row.
std::string filled_buffer(const TempDir& d, const std::string& name) {
  Producer<CheckedRow> p(ProducerOptions().dir(d.path()).name(name).capacity(kCapacity));
  for (std::uint64_t i = 0; i < 3 * kCapacity; ++i) p.write(CheckedRow::make(i));
  return p.path();
}

// What a reader may return while a writer forges the file: complete rows, each copied from the slot of the
// index it was returned as. (A process that can write the file can forge sequence words, so it can make an old
// row of the same slot pass for a newer one; it can never make a reader copy outside a slot.)
struct Verdict {
  std::uint64_t attached = 0, refused = 0, rows = 0, wrong = 0, unexpected = 0;

  void check(const std::byte* bytes, std::uint64_t index, std::uint32_t row_size, bool exact_index) {
    ++rows;
    if (row_size != sizeof(CheckedRow)) return;  // nothing to check against
    CheckedRow r;
    std::memcpy(&r, bytes, sizeof r);
    const bool slot_ok = r.index % kCapacity == index % kCapacity;
    if (!r.ok() || !slot_ok || (exact_index && r.index != index)) ++wrong;
  }
};

// Attaches to `path` over and over until `writer` is done, reading with every call; exact_index: the writer
// leaves the sequence words alone, so every row must be exactly the one asked for.
Verdict read_while(const std::string& path, Child& writer, bool exact_index) {
  Verdict v;
  std::vector<std::byte> buf;
  for (int round = 0; round < 1000000; ++round) {
    try {
      RawConsumer c(path, ConsumerOptions().attach_timeout(std::chrono::milliseconds(0)));
      ++v.attached;
      const std::uint32_t rs = c.row_size();
      buf.assign(std::size_t{rs} * 16, std::byte{0x5a});
      std::uint64_t index = 0;
      if (c.latest(buf.data(), &index)) v.check(buf.data(), index, rs, exact_index);
      Batch b = c.last(16, buf.data());
      for (std::size_t i = 0; i < b.count; ++i) v.check(buf.data() + i * rs, b.first + i, rs, exact_index);
      c.seek(c.head() > 40 ? c.head() - 40 : 0);
      for (int k = 0; k < 4; ++k) {
        b = c.read_new(buf.data(), 16);
        for (std::size_t i = 0; i < b.count; ++i) v.check(buf.data() + i * rs, b.first + i, rs, exact_index);
      }
      b = c.rows(index > 8 ? index - 8 : 0, index + 8, buf.data());
      for (std::size_t i = 0; i < b.count; ++i) v.check(buf.data() + i * rs, b.first + i, rs, exact_index);
      for (std::uint64_t i = index > 3 ? index - 3 : 0; i <= index; ++i)
        if (c.read(i, buf.data()) == ReadStatus::kOk) v.check(buf.data(), i, rs, exact_index);
      (void)c.state();
      (void)c.wait(std::chrono::microseconds(100), round % 2 ? Idle::kBlock : Idle::kBackoffSleep);
    } catch (const Error& e) {
      ++v.refused;
      switch (e.code()) {
        case Errc::kCorruptHeader: case Errc::kBadSchemaJson: case Errc::kUnsupportedVersion:
        case Errc::kTruncated: case Errc::kBadMagic: case Errc::kNotPublished: case Errc::kEmptyFile:
          break;
        default:
          ++v.unexpected;
          UNSCOPED_INFO("unexpected error: " << e.what());
      }
    }
    if (round % 64 == 63) {  // is the writer done?
      int status = 0;
      if (::waitpid(writer.pid, &status, WNOHANG) == writer.pid) {
        writer.pid = -1;
        REQUIRE(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
        break;
      }
    }
  }
  return v;
}

}  // namespace

TEST_CASE("hostile writer: geometry flipped during attach never steers a reader's copy", "[hostile]") {
  TempDir d;
  const std::string path = filled_buffer(d, "geo");
  Child writer({CBUF_HOSTILE_WRITER, path, "geometry", "1.5", "7"});
  REQUIRE(writer.line() == "running\n");
  const Verdict v = read_while(path, writer, /*exact_index=*/true);
  INFO("attached " << v.attached << ", refused " << v.refused << ", rows " << v.rows);
  CHECK(v.attached > 0);
  CHECK(v.refused > 0);  // the flips were seen, and refused
  CHECK(v.rows > 0);
  CHECK(v.wrong == 0);
  CHECK(v.unexpected == 0);
}

TEST_CASE("hostile writer: header, schema and sequence words rewritten while readers read", "[hostile]") {
  TempDir d;
  const std::string path = filled_buffer(d, "all");
  Child writer({CBUF_HOSTILE_WRITER, path, "all", "2", "11"});
  REQUIRE(writer.line() == "running\n");
  const Verdict v = read_while(path, writer, /*exact_index=*/false);
  INFO("attached " << v.attached << ", refused " << v.refused << ", rows " << v.rows);
  CHECK(v.attached > 0);
  CHECK(v.rows > 0);
  CHECK(v.wrong == 0);
  CHECK(v.unexpected == 0);
}

TEST_CASE("hostile writer: truncate-and-rewrite races attach, every attempt succeeds or fails cleanly", "[hostile]") {
  TempDir d;
  const std::string path = filled_buffer(d, "trunc");
  Child writer({CBUF_HOSTILE_WRITER, path, "truncate", "1.5", "3"});
  REQUIRE(writer.line() == "running\n");
  const Verdict v = read_while(path, writer, /*exact_index=*/true);
  INFO("attached " << v.attached << ", refused " << v.refused << ", rows " << v.rows);
  CHECK(v.attached + v.refused > 0);
  CHECK(v.wrong == 0);
  CHECK(v.unexpected == 0);
}

TEST_CASE("truncation under a consumer: the call in progress and every later call throw kTruncated", "[hostile]") {
  for (const off_t size : {off_t{0}, off_t{4096}}) {
    INFO("truncated to " << size << " bytes");
    TempDir d;
    Producer<CheckedRow> p(ProducerOptions().dir(d.path()).name("t").capacity(1024));
    for (std::uint64_t i = 0; i < 100; ++i) p.write(CheckedRow::make(i));
    Consumer<CheckedRow> c(p.path(), ConsumerOptions().start_index(0));
    CheckedRow rows[16];
    CHECK(c.read_new(rows).count == 16);
    REQUIRE(::truncate(p.path().c_str(), size) == 0);
    try {
      for (int k = 0; k < 100; ++k) (void)c.read_new(rows);  // reads past the new end: zero pages, then the error
      FAIL("no error after truncation");
    } catch (const Error& e) {
      CHECK(e.code() == Errc::kTruncated);
      CHECK_THAT(e.what(), Catch::Matchers::Contains("the file shrank under this reader"));
    }
    CHECK_THROWS_AS(c.latest(), Error);
    CHECK_THROWS_AS(c.last(4), Error);
    CHECK_THROWS_AS(c.head(), Error);
    CHECK(c.raw().truncated());
    // The producer in the same process survives its writes to the lost pages and reports it at close().
    for (std::uint64_t i = 100; i < 2000; ++i) p.write(CheckedRow::make(i));
    CHECK(p.raw().truncated());
    try {
      p.close();
      FAIL("close() did not report the truncation");
    } catch (const Error& e) {
      CHECK(e.code() == Errc::kTruncated);
    }
  }
}

TEST_CASE("truncation while a consumer sleeps in wait(): it wakes with kTruncated", "[hostile]") {
  TempDir d;
  Producer<CheckedRow> p(ProducerOptions().dir(d.path()).name("w").capacity(64));
  Consumer<CheckedRow> c(p.path(), ConsumerOptions().start(Start::kEnd));
  std::atomic<int> truncated_rc{-1};  // Catch's assertions are not thread-safe: checked after join()
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    truncated_rc = ::truncate(p.path().c_str(), 0);
  });
  const auto t0 = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(c.wait(std::chrono::seconds(10), Idle::kBlock), Error);
  t.join();
  CHECK(truncated_rc == 0);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
  CHECK_THROWS_AS(p.close(), Error);
}

#if !defined(CBUF_SANITIZED)  // the children die of SIGBUS on purpose; sanitizers report that as an error
TEST_CASE("SIGBUS guard: off by option, and faults outside cbuf mappings still get the default action", "[hostile]") {
  TempDir d;
  const std::string path = filled_buffer(d, "g");
  auto child_status = [](auto&& body) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      body();
      std::_Exit(0);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return status;
  };
  // sigbus_guard(false): the process owns SIGBUS, and dies of it as it would without cbuf.
  int status = child_status([&] {
    RawConsumer c(path, ConsumerOptions().sigbus_guard(false));
    if (::truncate(path.c_str(), 0) != 0) std::_Exit(3);
    std::byte row[64];
    (void)c.last(1, row);
    std::_Exit(4);
  });
  CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS));
  // With a guarded consumer in the process, a fault in another mapping still kills it with SIGBUS.
  const std::string other = d / "other";
  status = child_status([&] {
    RawConsumer c(filled_buffer(d, "g2"));
    const int fd = ::open(other.c_str(), O_RDWR | O_CREAT, 0600);
    if (fd < 0 || ::ftruncate(fd, 8192) != 0) std::_Exit(3);
    auto* p = static_cast<volatile char*>(::mmap(nullptr, 8192, PROT_READ, MAP_SHARED, fd, 0));
    if (::ftruncate(fd, 0) != 0) std::_Exit(3);
    (void)p[4096];
    std::_Exit(4);
  });
  CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS));
  // And a SIGBUS sent with kill() reaches a handler installed before cbuf's.
  status = child_status([&] {
    static volatile sig_atomic_t seen = 0;
    struct sigaction sa{};
    sa.sa_handler = [](int) { seen = 1; };
    ::sigaction(SIGBUS, &sa, nullptr);
    RawConsumer c(filled_buffer(d, "g3"));
    ::raise(SIGBUS);
    std::_Exit(seen ? 0 : 5);
  });
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
}
#endif
