// Shared test helpers: Catch2 2/3 include shim, a private buffer directory per test, row checksums.
#pragma once

#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#else
#include <catch2/catch.hpp>
#endif

// Skips the rest of a test with the reason (Catch2 3 reports a skip; Catch2 2 has no skip, so it warns).
#if defined(SKIP)
#define CBUF_SKIP(reason) SKIP(reason)
#else
#define CBUF_SKIP(reason)         \
  do {                            \
    WARN("SKIPPED: " << reason);  \
    return;                       \
  } while (false)
#endif

#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

#include "cbuf/cbuf.hpp"

namespace cbuf_test {

// A fresh directory under /dev/shm, removed with everything in it when the test ends.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> n{0};
    path_ = "/dev/shm/cbuf-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
    std::filesystem::remove_all(path_);
    std::filesystem::create_directory(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline std::uint64_t mix(std::uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// A row that carries its index and a checksum over every other word: a torn or misplaced row fails.
// Word k of row i's payload is mix(i * (kWords + 2) + k) (tests/python/test_reader.py checks the same).
template <std::size_t kWords>
struct Checked {
  std::uint64_t index;
  std::uint64_t payload[kWords];
  std::uint64_t checksum;

  static Checked make(std::uint64_t i) {
    Checked r{};
    r.index = i;
    for (std::size_t k = 0; k < kWords; ++k) r.payload[k] = mix(i * (kWords + 2) + k);
    r.checksum = r.compute();
    return r;
  }
  std::uint64_t compute() const {
    std::uint64_t s = mix(index);
    for (auto w : payload) s = mix(s ^ w);
    return s;
  }
  bool ok() const { return checksum == compute(); }
};
// 64 bytes, the torture tests' row.
using CheckedRow = Checked<6>;
static_assert(sizeof(CheckedRow) == 64);
// 4 KiB: large enough that the fence form copies it with vector loads and stores, and that a writer can
// overtake a reader in the middle of a copy.
using BigRow = Checked<510>;
static_assert(sizeof(BigRow) == 4096);

// Expected accounting for a cursor that must see every index from `start` on, either received or lost.
struct Ledger {
  std::uint64_t expected = 0;
  std::uint64_t received = 0;
  std::uint64_t lost = 0;
  std::uint64_t errors = 0;  // torn rows, gaps or disorder: must stay 0

  template <class Row>  // CheckedRow, BigRow
  void account(const cbuf::Batch& b, const Row* rows) {
    if (b.lost.count) {
      if (b.lost.first != expected) ++errors;
      expected += b.lost.count;
      lost += b.lost.count;
    }
    if (b.count && b.first != expected) ++errors;
    for (std::size_t i = 0; i < b.count; ++i) {
      if (!rows[i].ok() || rows[i].index != b.first + i) ++errors;
    }
    expected += b.count;
    received += b.count;
  }
};

// The slow consumer of the torture tests: stalls until the producer has overwritten the row at its cursor (or
// has written everything), so it is lapped however fast or slow the build makes the producer.
inline void wait_until_lapped(const cbuf::RawConsumer& c, std::uint64_t rows) {
  while (c.head() < c.cursor() + c.capacity() + 1 && c.head() < rows) std::this_thread::yield();
}

// A child process with pipes to its stdin and from its stdout.
struct Child {
  pid_t pid = -1;
  int in = -1;
  FILE* out = nullptr;

  Child(const std::vector<std::string>& args) {
    int to_child[2], from_child[2];
    REQUIRE(::pipe(to_child) == 0);
    REQUIRE(::pipe(from_child) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, to_child[0], 0);
    posix_spawn_file_actions_adddup2(&fa, from_child[1], 1);
    posix_spawn_file_actions_addclose(&fa, to_child[1]);
    posix_spawn_file_actions_addclose(&fa, from_child[0]);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    REQUIRE(::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    ::close(to_child[0]);
    ::close(from_child[1]);
    in = to_child[1];
    out = ::fdopen(from_child[0], "r");
  }
  std::string line() {
    char buf[256] = {};
    return std::fgets(buf, sizeof buf, out) ? std::string(buf) : std::string();
  }
  int wait() {
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    if (in >= 0) ::close(in);
    if (out) std::fclose(out);
  }
};

}  // namespace cbuf_test
