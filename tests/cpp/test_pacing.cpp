// Pacing (ConsumerOptions::pace, pacing.hpp): a reader that keeps finding new rows the moment it catches up
// reads in batches after a pause; a request/reply reader never does. The rule itself runs on an injected clock
// (BasicPacer<FakeClock>); the consumer's use of it runs single-threaded: the "producer" writes between the
// reader's looks, so every step is deterministic. The pause is long (50 ms) so that it cannot run out between
// two statements, even under a sanitizer.
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
  // The producer writes 3 rows between every two looks: more than one row came since the last catch-up.
  int cycles = 0;
  while (!c.raw().paced() && cycles < 64) {
    r.write(3);
    CHECK(drain(c, ledger) == 3);
    ++cycles;
  }
  REQUIRE(c.raw().paced());
  CHECK(cycles == 8);  // 8 hot catch-ups in a row
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
  CHECK(c.raw().pacing().pauses >= 2);
  CHECK(c.raw().pacing().rows_after_pauses == 40);
  CHECK(ledger.received == r.written);
  CHECK(ledger.lost == 0);
  CHECK(ledger.errors == 0);
}

TEST_CASE("pacing: a request/reply reader is never paced", "[pacing]") {
  Rig r;
  Consumer<CheckedRow> c(r.p.path(), ConsumerOptions().pace(std::chrono::microseconds(5)));
  cbuf_test::Ledger ledger;
  // One row per request, at least 20 us after the last (slower than the 5 us pause would delay it); the reader
  // looks several times before the reply comes, as a spinning reader does.
  for (int i = 0; i < 200; ++i) {
    for (int k = 0; k < 20; ++k) CHECK(drain(c, ledger) == 0);
    std::this_thread::sleep_for(std::chrono::microseconds(20));
    r.write(1);
    CHECK(drain(c, ledger) == 1);
    CHECK_FALSE(c.raw().paced());
  }
  CHECK(ledger.received == 200);
  CHECK(c.raw().pacing().catch_ups == 200);
  CHECK(c.raw().pacing().pauses == 0);
}

TEST_CASE("pacing: a pause that gathers almost nothing ends pacing and makes the next one harder to start",
          "[pacing]") {
  Rig r;
  Consumer<CheckedRow> c(r.p.path(), ConsumerOptions().pace(kPause));
  cbuf_test::Ledger ledger;
  // A reply of two rows that always comes before the next look looks like a stream: pacing starts after 8...
  auto cycles_to_pace = [&] {
    int n = 0;
    while (!c.raw().paced() && n < 100) {
      r.write(2);
      CHECK(drain(c, ledger) == 2);
      ++n;
    }
    return n;
  };
  CHECK(cycles_to_pace() == 8);
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

namespace {
// A clock the test moves by hand.
struct FakeClock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<FakeClock>;
  static constexpr bool is_steady = true;
  static inline time_point t{};
  static time_point now() noexcept { return t; }
};
using FakePacer = BasicPacer<FakeClock>;
constexpr auto kNothingGathered = [] { return std::uint64_t{0}; };

// One exchange: `empty` looks that find nothing, `gap` later `rows` rows, read by one look that catches up.
void exchange(FakePacer& p, int empty, std::chrono::nanoseconds gap, std::size_t rows) {
  for (int k = 0; k < empty; ++k) p.after_look(0, false, 1024, kNothingGathered);
  FakeClock::t += gap;
  p.after_look(rows, false, 1024, kNothingGathered);
}
}  // namespace

TEST_CASE("pacing: the rule decides by the rows and the time between catch-ups, never by the number of looks",
          "[pacing]") {
  using std::chrono::microseconds;
  using std::chrono::nanoseconds;
  // How many empty looks fit between two rows depends on the CPU (its cross-core latency, the reader's loop):
  // every case below runs with none, a few and many, and must come out the same.
  for (const int empty : {0, 3, 16, 17, 200}) {
    CAPTURE(empty);
    {  // request/reply: one row per exchange, 8 us apart (longer than the pause) - never paced
      FakePacer p;
      p.set(microseconds(5));
      for (int i = 0; i < 1000; ++i) exchange(p, empty, microseconds(8), 1);
      CHECK_FALSE(p.paced());
      CHECK(p.stats().catch_ups == 1000);
      CHECK(p.stats().pauses == 0);
    }
    {  // a producer in lockstep with the reader: one row per look, 300 ns apart (or 3 us: a reader that yields
       // between looks) - paced after 8
      for (const auto gap : {nanoseconds(300), nanoseconds(3000)}) {
        FakePacer p;
        p.set(microseconds(5));
        int n = 0;
        while (!p.paced() && n < 100) exchange(p, empty, gap, 1), ++n;
        CHECK(n == 9);  // the first catch-up has no earlier one to be timed against
      }
    }
    {  // a producer that outruns the reader: several rows per catch-up, even 20 us apart (a slow reader) - paced
      FakePacer p;
      p.set(microseconds(5));
      int n = 0;
      while (!p.paced() && n < 100) exchange(p, empty, microseconds(20), 5), ++n;
      CHECK(n == 8);
    }
  }
}

TEST_CASE("pacing: a paced reader pauses after each catch-up, and its counters show it", "[pacing]") {
  using std::chrono::microseconds;
  FakePacer p;
  p.set(microseconds(5));
  for (int i = 0; i < 8; ++i) exchange(p, 0, microseconds(1), 4);
  REQUIRE(p.paced());
  CHECK(p.pausing());
  CHECK(p.holding());  // the pause runs: the next look is skipped
  FakeClock::t += microseconds(4);
  CHECK(p.holding());
  FakeClock::t += microseconds(1);
  CHECK_FALSE(p.holding());
  // The first look after the pause reads what gathered (100 rows: a stream) and catches up: another pause.
  p.after_look(100, false, 1024, [] { return std::uint64_t{100}; });
  CHECK(p.paced());
  CHECK(p.pausing());
  CHECK(p.stats().pauses == 2);
  CHECK(p.stats().rows_after_pauses == 100);
  CHECK(p.stats().catch_ups == 9);
  CHECK(p.stats().paced_fraction() * 9 > 1.99);
  CHECK(p.stats().paced_fraction() * 9 < 2.01);
  // A wait longer than the pause ends pacing.
  p.waited(microseconds(6));
  CHECK_FALSE(p.paced());
  CHECK_FALSE(p.pausing());
  // pace 0: never paced, whatever comes.
  FakePacer off;
  off.set(std::chrono::nanoseconds(0));
  for (int i = 0; i < 100; ++i) exchange(off, 0, std::chrono::nanoseconds(10), 50);
  CHECK_FALSE(off.paced());
  CHECK(off.stats().catch_ups == 0);
}
