// Waiting for rows: every idle strategy returns promptly when a row arrives and times out when none does;
// blocking waits need write permission for the waiter word and fall back to sleeping without it.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>
#include <thread>

#include "common.hpp"

using namespace cbuf;
using namespace std::chrono_literals;
using cbuf_test::TempDir;
using Clock = std::chrono::steady_clock;

TEST_CASE("wait: each idle strategy wakes on a new row and times out without one", "[wait]") {
  for (Idle idle : {Idle::kBusySpin, Idle::kSpinThenYield, Idle::kBackoffSleep, Idle::kBlock}) {
    INFO("idle strategy " << static_cast<int>(idle));
    TempDir d;
    Producer<std::uint64_t> p(ProducerOptions().dir(d.path()).name("w").capacity(16));
    RawConsumer c(p.path());
    auto t0 = Clock::now();
    CHECK_FALSE(c.wait(100ms, idle));
    const auto waited = Clock::now() - t0;
    CHECK(waited >= 100ms);
    CHECK(waited < 2s);

    std::thread writer([&] {
      std::this_thread::sleep_for(50ms);
      p.write(42);
    });
    t0 = Clock::now();
    CHECK(c.wait(10s, idle));
    const auto woke = Clock::now() - t0;
    writer.join();
    CHECK(woke >= 40ms);
    CHECK(woke < 2s);
    std::uint64_t v = 0;
    CHECK(c.try_next(&v).has_row);
    CHECK(v == 42);
    CHECK_FALSE(c.wait(0ms, idle));  // consumed: nothing pending
  }
}

TEST_CASE("wait: a blocked consumer is woken within microseconds, not by its sleep slice", "[wait]") {
  TempDir d;
  Producer<std::uint64_t> p(ProducerOptions().dir(d.path()).name("w").capacity(16));
  RawConsumer c(p.path());
  REQUIRE(c.blocking_wait_available());
  // Wake-ups must come from the futex, not from the 1 ms re-check slice: over 50 rounds the median stays far
  // below the slice.
  std::vector<double> us;
  for (int i = 0; i < 50; ++i) {
    std::atomic<bool> sleeping{false};
    std::thread writer([&] {
      while (!sleeping) std::this_thread::yield();
      std::this_thread::sleep_for(2ms);  // let the consumer reach the futex
      p.write(static_cast<std::uint64_t>(Clock::now().time_since_epoch().count()));
    });
    sleeping = true;
    REQUIRE(c.wait(5s, Idle::kBlock));
    std::uint64_t sent = 0;
    REQUIRE(c.try_next(&sent).has_row);
    us.push_back(static_cast<double>(Clock::now().time_since_epoch().count() - static_cast<std::int64_t>(sent)) / 1e3);
    writer.join();
  }
  std::sort(us.begin(), us.end());
  INFO("median wake-up " << us[us.size() / 2] << " us");
  CHECK(us[us.size() / 2] < 500.0);
  CHECK(p.raw().next_index() == 50);
  p.write(0);
  CHECK(c.shared_header().waiters == 0);  // the producer cleared the flag when it woke us
}

TEST_CASE("wait: a reader without write permission falls back to sleeping, and still wakes", "[wait]") {
  TempDir d;
  Producer<std::uint64_t> p(ProducerOptions().dir(d.path()).name("ro").capacity(16).mode(0644));
  ::chmod(d.path().c_str(), 0755);
  const pid_t child = ::fork();
  if (child == 0) {
    // An unprivileged reader: may read the file, may not write it.
    if (::getuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) std::_Exit(10);
    try {
      RawConsumer c(p.path(), ConsumerOptions().start(Start::kEnd));
      if (c.blocking_wait_available() && ::getuid() != 0) std::_Exit(11);
      if (!c.wait(10s, Idle::kBlock)) std::_Exit(12);
      std::_Exit(0);
    } catch (...) {
      std::_Exit(13);
    }
  }
  std::this_thread::sleep_for(100ms);
  p.write(1);
  int status = 0;
  ::waitpid(child, &status, 0);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
