// Pacing (ConsumerOptions::pace, RingReader "Pacing"): a reader that keeps finding new rows the moment it
// catches up reads in batches after a pause; a request/reply reader never does. Single-threaded: the "producer"
// writes between the reader's looks, so every step is deterministic. The pause is long (50 ms) so that it
// cannot run out between two statements, even under a sanitizer.
#include <chrono>
#include <thread>
#include <vector>

#include "common.hpp"

using namespace cbuf;
using cbuf_test::CheckedRow;
using cbuf_test::TempDir;

namespace {

constexpr auto kPause = std::chrono::milliseconds(50);

struct Rig {
  TempDir d;
  Producer<CheckedRow> p{ProducerOptions().dir(d.path()).name("pace").capacity(4096)};
  std::uint64_t written = 0;
  void write(int n) {
    for (int k = 0; k < n; ++k) p.write(CheckedRow::make(written++));
  }
};

// Reads everything there is (one read_new of up to 1024 rows) into the ledger; returns the rows read.
std::uint64_t drain(Consumer<CheckedRow>& c, cbuf_test::Ledger& ledger) {
  std::vector<CheckedRow> out(1024);
  const Batch b = c.read_new(std::span<CheckedRow>(out));
  ledger.account(b, out.data());
  return b.count;
}

}  // namespace

TEST_CASE("pacing: a reader the producer outruns reads in batches after a pause, and loses nothing", "[pacing]") {
  Rig r;
  Consumer<CheckedRow> c(r.p.path(), ConsumerOptions().pace(kPause));
  cbuf_test::Ledger ledger;
  // The producer writes 3 rows between every two looks: each look finds rows right after the last catch-up.
  int cycles = 0;
  while (!c.raw().paced() && cycles < 64) {
    r.write(3);
    CHECK(drain(c, ledger) == 3);
    ++cycles;
  }
  REQUIRE(c.raw().paced());
  CHECK(cycles == 9);  // the first look is no catch-up; then 8 in a row
  // Paced, caught up: rows written now are left alone until the pause is over...
  r.write(40);
  CHECK(drain(c, ledger) == 0);
  CHECK(drain(c, ledger) == 0);
  // ...then read in one batch, and pacing goes on (the pause gathered enough to be worth it).
  std::this_thread::sleep_for(kPause + std::chrono::milliseconds(5));
  CHECK(drain(c, ledger) == 40);
  CHECK(c.raw().paced());
  // The stream stops: the first look after the next pause finds nothing and pacing ends at once.
  std::this_thread::sleep_for(kPause + std::chrono::milliseconds(5));
  CHECK(drain(c, ledger) == 0);
  CHECK_FALSE(c.raw().paced());
  r.write(1);
  CHECK(drain(c, ledger) == 1);  // unpaced again: at the first look
  CHECK(ledger.received == r.written);
  CHECK(ledger.lost == 0);
  CHECK(ledger.errors == 0);
}

TEST_CASE("pacing: a request/reply reader is never paced", "[pacing]") {
  Rig r;
  Consumer<CheckedRow> c(r.p.path(), ConsumerOptions().pace(kPause));
  cbuf_test::Ledger ledger;
  // One row per request; the reader looks several times before the reply comes, as a spinning reader does.
  for (int i = 0; i < 200; ++i) {
    for (int k = 0; k < 20; ++k) CHECK(drain(c, ledger) == 0);
    r.write(1);
    CHECK(drain(c, ledger) == 1);
    CHECK_FALSE(c.raw().paced());
  }
  CHECK(ledger.received == 200);
}

TEST_CASE("pacing: a pause that gathers almost nothing ends pacing and makes the next one harder to start",
          "[pacing]") {
  Rig r;
  Consumer<CheckedRow> c(r.p.path(), ConsumerOptions().pace(kPause));
  cbuf_test::Ledger ledger;
  // A reply that always comes before the next look looks like a stream: pacing starts after 8 of them (and
  // the first look)...
  auto cycles_to_pace = [&] {
    int n = 0;
    while (!c.raw().paced() && n < 100) {
      r.write(1);
      CHECK(drain(c, ledger) == 1);
      ++n;
    }
    return n;
  };
  CHECK(cycles_to_pace() == 9);
  // ...and the pause shows it is not one: one row gathered, which is delivered, and pacing ends.
  r.write(1);
  CHECK(drain(c, ledger) == 0);
  std::this_thread::sleep_for(kPause + std::chrono::milliseconds(5));
  CHECK(drain(c, ledger) == 1);
  CHECK_FALSE(c.raw().paced());
  CHECK(cycles_to_pace() == 16);  // twice as many before the next try
  CHECK(ledger.lost == 0);
  CHECK(ledger.errors == 0);
}

TEST_CASE("pacing: pace(0) turns it off", "[pacing]") {
  Rig r;
  Consumer<CheckedRow> c(r.p.path(), ConsumerOptions().pace(std::chrono::nanoseconds(0)));
  cbuf_test::Ledger ledger;
  for (int i = 0; i < 100; ++i) {
    r.write(3);
    CHECK(drain(c, ledger) == 3);
  }
  CHECK_FALSE(c.raw().paced());
}

TEST_CASE("pacing: wait() sits out the pause, and a wait longer than the pause ends pacing", "[pacing]") {
  Rig r;
  Consumer<CheckedRow> c(r.p.path(), ConsumerOptions().pace(kPause));
  cbuf_test::Ledger ledger;
  while (!c.raw().paced()) {
    r.write(20);
    drain(c, ledger);
  }
  r.write(20);
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(c.wait(std::chrono::seconds(5), Idle::kBlock));  // rows are there, but the pause comes first
  CHECK(std::chrono::steady_clock::now() - t0 >= kPause - std::chrono::milliseconds(1));
  CHECK(drain(c, ledger) == 20);
  CHECK(c.raw().paced());
  // Nothing comes for longer than the pause: the wait times out and the reader is no longer paced.
  CHECK(drain(c, ledger) == 0);
  CHECK_FALSE(c.wait(2 * kPause + std::chrono::milliseconds(20), Idle::kBlock));
  CHECK_FALSE(c.raw().paced());
  CHECK(ledger.received == r.written);
}
