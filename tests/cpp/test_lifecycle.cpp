// Lifecycle: producers restart by default, consumers may start first, and following consumers move to each
// new epoch, told exactly where the old one ended. Take-over never touches a live buffer.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <sstream>

#include "common.hpp"

using namespace cbuf;
using namespace std::chrono_literals;
using cbuf_test::CheckedRow;
using cbuf_test::Child;
using cbuf_test::TempDir;

namespace {

// Runs body in a forked child; returns its exit status (128 + signal if killed).
template <class F>
int in_child(F&& body) {
  const pid_t pid = ::fork();
  if (pid == 0) std::_Exit(body());
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct RowA {
  std::uint64_t x;
  static constexpr std::string_view kSchemaJson =
      R"({"name":"life","columns":[{"name":"x","type":"uint64","offset":0}]})";
  static constexpr std::string_view kSchemaName = "life";
  static constexpr std::uint64_t kFingerprint = 0xa;
};
struct RowB {
  double y;
  static constexpr std::string_view kSchemaJson =
      R"({"name":"life","columns":[{"name":"y","type":"float64","offset":0}]})";
  static constexpr std::string_view kSchemaName = "life";
  static constexpr std::uint64_t kFingerprint = 0xb;
};

}  // namespace

TEST_CASE("restart by default: a closed or dead buffer is taken over, kFail refuses with the caller's hint", "[lifecycle]") {
  TempDir d;
  {
    Producer<std::uint64_t> first(ProducerOptions().dir(d.path()).name("r").capacity(8));
    first.write(1);
  }  // closed, kept
  Producer<std::uint64_t> second(ProducerOptions().dir(d.path()).name("r").capacity(8));  // no option needed
  CHECK(RawConsumer(d / "r").epoch() == 2);
  second.close();
  try {
    Producer<std::uint64_t> third(
        ProducerOptions().dir(d.path()).name("r").if_exists(IfExists::kFail).replace_hint("--replace"));
    FAIL("kFail replaced a closed buffer");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::kExists);
    CHECK_THAT(e.what(), Catch::Matchers::Contains("(--replace)"));
    CHECK_THAT(e.what(), Catch::Matchers::Contains("closed, epoch 2"));
  }
}

TEST_CASE("a consumer may start before its producer, a buffer that never appears is a clear error", "[lifecycle]") {
  TempDir d;
  const std::string path = d / "late";
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::this_thread::sleep_for(300ms);
    Producer<std::uint64_t> p(ProducerOptions().name(path).capacity(8));
    for (std::uint64_t i = 0; i < 5; ++i) p.write(i);
    std::_Exit(0);
  }
  const auto t0 = std::chrono::steady_clock::now();
  Consumer<std::uint64_t> c(path, ConsumerOptions().attach_timeout(10s).start_index(0));
  const auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(waited >= 250ms);
  CHECK(waited < 5s);  // woken by inotify when the name appeared, not at the timeout
  ::waitpid(pid, nullptr, 0);
  std::uint64_t rows[8];
  CHECK(c.read_new(rows).count == 5);

  const auto t1 = std::chrono::steady_clock::now();
  try {
    RawConsumer never(d / "never", ConsumerOptions().attach_timeout(200ms));
    FAIL("attached to nothing");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::kNotFound);
    CHECK_THAT(e.what(), Catch::Matchers::Contains("after waiting 200 ms"));
  }
  CHECK(std::chrono::steady_clock::now() - t1 >= 200ms);
}

TEST_CASE("wait_live: a consumer passes over the last run's closed buffer and attaches to the new run", "[lifecycle]") {
  // The stale-buffer trap: a consumer started before its producer found the previous run's closed buffer,
  // read its rows and stopped before the new run began. wait_live() waits for a live producer instead.
  TempDir d;
  const std::string path = d / "run";
  {
    Producer<std::uint64_t> old(ProducerOptions().name(path).capacity(64));
    for (std::uint64_t i = 0; i < 40; ++i) old.write(i);
  }  // closed: the last run's buffer
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::this_thread::sleep_for(300ms);
    Producer<std::uint64_t> p(ProducerOptions().name(path).capacity(64));
    for (std::uint64_t i = 0; i < 3; ++i) p.write(100 + i);
    std::this_thread::sleep_for(500ms);
    std::_Exit(0);
  }
  Consumer<std::uint64_t> c(path, ConsumerOptions().attach_timeout(10s).wait_live(true));
  ::waitpid(pid, nullptr, 0);
  CHECK(c.raw().epoch() == 2);
  std::uint64_t rows[8];
  Batch b = c.read_new(rows);
  CHECK((b.count == 3 && rows[0] == 100));
  try {  // no new run within the timeout: a clear error, not the old rows
    RawConsumer stale(path, ConsumerOptions().attach_timeout(200ms).wait_live(true));
    FAIL("attached to a buffer whose producer is gone");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::kNotLive);
    CHECK_THAT(e.what(), Catch::Matchers::Contains("dead buffer (epoch 2)"));
  }
}

TEST_CASE("following: 100 producer restarts (clean close and kill -9), every epoch accounted for exactly", "[lifecycle]") {
  TempDir d;
  const std::string path = d / "life";
  constexpr int kEpochs = 100;
  constexpr std::uint64_t kCapacity = 128;
  // Started before any producer: it waits for the name, then follows every restart.
  Child follower({CBUF_TORTURE_PROC, "follow", path, std::to_string(kEpochs), "0"});
  std::map<std::uint64_t, std::uint64_t> written;
  for (int e = 1; e <= kEpochs; ++e) {
    const std::uint64_t rows = 20 + (static_cast<std::uint64_t>(e) * 37) % 300;  // some epochs lap the reader
    const bool crash = e % 3 == 0 && e != kEpochs;
    const int status = in_child([&] {
      Producer<CheckedRow> p(ProducerOptions().name(path).capacity(kCapacity));  // takes over by default
      for (std::uint64_t i = 0; i < rows; ++i) p.write(CheckedRow::make(i));
      if (crash) ::raise(SIGKILL);  // dies without closing: the file says live, its process is gone
      p.close();
      return 0;
    });
    REQUIRE(status == (crash ? 128 + SIGKILL : 0));
    written[static_cast<std::uint64_t>(e)] = rows;
    // The follower reached this epoch before the next producer starts, so it sees each one.
    REQUIRE(follower.line() == "epoch " + std::to_string(e) + "\n");
  }
  std::uint64_t epochs_reported = 0;
  for (std::string line; (line = follower.line()) != "end\n";) {
    REQUIRE(!line.empty());
    unsigned long long epoch = 0, received = 0, lost = 0, errors = 1, restarts = 9;
    REQUIRE(std::sscanf(line.c_str(), "%llu received=%llu lost=%llu errors=%llu restarts=%llu", &epoch, &received,
                        &lost, &errors, &restarts) == 5);
    INFO(line);
    CHECK(received + lost == written[epoch]);
    CHECK(errors == 0);
    CHECK(restarts == (epoch == 1 ? 0u : 1u));  // each discontinuity reported once
    ++epochs_reported;
  }
  CHECK(epochs_reported == kEpochs);
  CHECK(follower.wait() == 0);
}

TEST_CASE("take-over never touches a live buffer: two producers racing for one closed name, 50 times", "[lifecycle]") {
  TempDir d;
  const std::string path = d / "race";
  { Producer<std::uint64_t> seed(ProducerOptions().name(path).capacity(8)); }
  for (int round = 0; round < 50; ++round) {
    int go[2];
    REQUIRE(::pipe(go) == 0);
    pid_t kids[2];
    for (pid_t& k : kids) {
      k = ::fork();
      if (k == 0) {
        ::close(go[1]);
        char c;
        if (::read(go[0], &c, 1) != 0) std::_Exit(9);  // wait for the start signal (EOF)
        try {
          Producer<std::uint64_t> p(ProducerOptions().name(path).capacity(8));
          p.write(static_cast<std::uint64_t>(::getpid()));
          std::this_thread::sleep_for(100ms);  // stay live while the other one tries
          // Still ours: nobody replaced a live buffer.
          RawConsumer check(path);
          std::uint64_t v = 0;
          std::_Exit(check.latest(&v) && v == static_cast<std::uint64_t>(::getpid()) &&
                             check.state() == ProducerState::kLive ? 0 : 3);
        } catch (const Error& e) {
          std::_Exit(e.code() == Errc::kExists ? 1 : 4);
        }
      }
    }
    ::close(go[0]);
    ::close(go[1]);  // both start now
    int won = 0, refused = 0;
    for (pid_t k : kids) {
      int status = 0;
      ::waitpid(k, &status, 0);
      REQUIRE(WIFEXITED(status));
      if (WEXITSTATUS(status) == 0) ++won;
      else if (WEXITSTATUS(status) == 1) ++refused;
      else FAIL("child exit status " << WEXITSTATUS(status));
    }
    CHECK(won == 1);
    CHECK(refused == 1);
  }
  CHECK(RawConsumer(path).epoch() == 51);
}

TEST_CASE("following into another schema: a typed consumer stops naming the columns, a raw one goes on", "[lifecycle]") {
  TempDir d;
  const std::string path = d / "life";
  std::optional<Producer<RowA>> a(std::in_place, ProducerOptions().name(path).capacity(8));
  a->write(RowA{7});
  Consumer<RowA> typed(path, ConsumerOptions().follow(true));
  RawConsumer raw(path, ConsumerOptions().follow(true));
  RowA rows[8];
  CHECK(typed.read_new(rows).count == 1);
  std::byte bytes[64];
  CHECK(raw.read_new(bytes, 8).count == 1);
  a->close();
  Producer<RowB> b(ProducerOptions().name(path).capacity(8));
  b.write(RowB{1.5});
  try {
    (void)typed.read_new(rows);
    FAIL("followed into another schema");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::kSchemaMismatch);
    CHECK_THAT(e.what(), Catch::Matchers::Contains("epoch 1 -> 2"));
    CHECK_THAT(e.what(), Catch::Matchers::Contains("column 'y' (float64 @0) added"));
    CHECK_THAT(e.what(), Catch::Matchers::Contains("column 'x' (uint64 @0) removed"));
  }
  try {  // attaching with the wrong row type says the same
    Consumer<RowA> again(path);
    FAIL("attached to another schema");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::Matchers::Contains("column 'x' (uint64 @0) removed"));
  }
  const Batch moved = raw.read_new(bytes, 8);
  REQUIRE(moved.restart);
  CHECK(moved.restart.old_epoch == 1);
  CHECK(moved.restart.new_epoch == 2);
  CHECK(moved.restart.old_end == 1);
  CHECK(moved.restart.new_start == 0);
  CHECK(moved.restart.schema_changed);
  CHECK(raw.columns().at(0).name == "y");
  const Batch next = raw.read_new(bytes, 8);
  CHECK(next.count == 1);
  double y;
  std::memcpy(&y, bytes, 8);
  CHECK(y == 1.5);
}
