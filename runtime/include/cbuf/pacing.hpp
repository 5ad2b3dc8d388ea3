// cbuf/pacing.hpp - when a streaming reader leaves the ring alone for a while (ConsumerOptions::pace).
//
// A reader that catches up with a producer faster than its own polls keeps taking the producer's working cache
// lines away from it, one row at a time (a 64 B producer with one such reader ran at a third of its speed).
// Such a reader is *paced*: after catching up it leaves the ring alone for `pace` and then reads what gathered
// in one batch, behind the producer instead of at its heels.
//
// The rule decides by what it measures directly, so that it holds on any CPU: between two catch-ups (looks that
// read all there was) it counts the rows that came and times the interval. More than one row, or one row sooner
// than the pause would have delayed it (a cycle shorter than `pace`), means the producer outruns this reader's
// polls; kMinStreak such catch-ups in a row start pacing. (A rule that counted the reader's empty looks instead
// engaged on one CPU model and not on another: how many looks fit between two rows depends on the cross-core
// latency and on the reader's loop.) A request/reply reader - one row per exchange, slower than the pause - is
// never paced. A pause that gathers nothing ends pacing (the stream stopped); one that gathers a single row ends
// it too and doubles the streak needed next time (a fast request/reply exchange, not a stream: a stream of even
// half a million rows/s gathers two). A wait longer than the pause ends it. docs/how-it-works.md, "Many
// readers".
//
// The Pacer is the policy only: it never touches the ring. Its owner (RawConsumer) asks holding() before a look,
// reports each look with after_look(), sits out pausing() up to look_after() before a wait, and reports the
// wait with waited(). The clock is a parameter so that tests can drive it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace cbuf {

// What pacing did, for a reader to show (RawConsumer::pacing, cbuf.Reader.pacing, the fan-out bench).
struct PacingStats {
  std::uint64_t catch_ups = 0;          // looks that read all there was after rows had come
  std::uint64_t pauses = 0;             // catch-ups after which the reader paused (it was paced)
  std::uint64_t rows_after_pauses = 0;  // rows read by the first look after each pause
  // The fraction of catch-ups that were paced.
  double paced_fraction() const noexcept {
    return catch_ups == 0 ? 0.0 : static_cast<double>(pauses) / static_cast<double>(catch_ups);
  }
};

template <class Clock = std::chrono::steady_clock>
class BasicPacer {
 public:
  using time_point = typename Clock::time_point;

  // 0 turns pacing off (the reader is never paced).
  void set(std::chrono::nanoseconds pace) noexcept {
    pace_ = pace;
    streak_ = 0;
    pausing_ = false;
  }
  bool enabled() const noexcept { return pace_.count() > 0; }
  // Paced: after catching up the reader pauses for `pace` before looking again.
  bool paced() const noexcept { return streak_ >= streak_needed_; }
  // Paced and caught up: the next look waits for look_after().
  bool pausing() const noexcept { return pausing_; }
  time_point look_after() const noexcept { return look_after_; }
  const PacingStats& stats() const noexcept { return stats_; }

  // Before a look: true while a pause is running (the look is skipped, without touching the ring).
  bool holding() const noexcept { return pausing_ && Clock::now() < look_after_; }

  // After a look that returned `count` of at most `max` rows (`lost`: it reported rows lost). `gathered()`
  // says how many rows came since the pause began, asked only after a pause. A reader that stays behind (a
  // full batch) only adds to the cycle's rows: the rest is out of line.
  template <class Gathered>
  [[gnu::always_inline]] void after_look(std::size_t count, bool lost, std::size_t max, Gathered gathered) noexcept {
    if (!enabled()) return;
    if (count == max && count != 0 && !pausing_) {
      cycle_rows_ += count;
      caught_up_ = false;
      return;
    }
    learn(count, lost, max, gathered);
  }

  // After a wait that ran for `how_long` after the pause: longer than the pause, the end of pacing (rows are not
  // outrunning this reader).
  void waited(std::chrono::nanoseconds how_long) noexcept {
    if (how_long > pace_) {
      streak_ = 0;
      pausing_ = false;
    }
  }

  static constexpr std::uint32_t kMinStreak = 8;      // hot catch-ups in a row before pacing starts
  static constexpr std::uint32_t kMaxStreak = 4096;   // ... doubled each time a pause gathered almost nothing
  static constexpr std::uint64_t kPacedMinRows = 2;   // what a pause must gather to be a stream

 private:
  template <class Gathered>
  [[gnu::noinline]] void learn(std::size_t count, bool lost, std::size_t max, Gathered gathered) noexcept {
    if (max == 0) return;  // no look
    const bool after_pause = pausing_;
    pausing_ = false;
    if (after_pause) {
      if (count == 0 && !lost) {  // the pause gathered nothing: the stream stopped
        streak_ = 0;
        caught_up_ = true;
        return;
      }
      stats_.rows_after_pauses += count;
      if (gathered() < kPacedMinRows) {  // one row: a fast request/reply exchange, not a stream
        streak_ = 0;
        streak_needed_ = std::min(streak_needed_ * 2, kMaxStreak);
      } else {
        streak_needed_ = kMinStreak;
      }
    }
    cycle_rows_ += count;
    if (count == max) {  // more to read: no catch-up yet
      caught_up_ = false;
      return;
    }
    if (count == 0 && (caught_up_ || cycle_rows_ == 0)) {  // nothing came since the last catch-up (or ever)
      caught_up_ = true;
      return;
    }
    // A catch-up: the end of a cycle in which cycle_rows_ rows came, one clock read.
    const time_point now = Clock::now();
    ++stats_.catch_ups;
    if (!after_pause && !paced()) {
      const bool hot = cycle_rows_ > 1 || now - caught_at_ < pace_;
      streak_ = hot ? streak_ + 1 : 0;
    }
    caught_at_ = now;
    cycle_rows_ = 0;
    caught_up_ = true;
    if (paced()) {
      look_after_ = now + pace_;
      pausing_ = true;
      ++stats_.pauses;
    }
  }

  std::chrono::nanoseconds pace_{0};  // 0: never paced
  std::uint32_t streak_ = 0;          // hot catch-ups in a row
  std::uint32_t streak_needed_ = kMinStreak;
  std::uint64_t cycle_rows_ = 0;      // rows read since the last catch-up
  bool caught_up_ = false;            // the last look read everything there was
  bool pausing_ = false;              // paced: the next look is the first after a pause
  time_point caught_at_{};            // when the last catch-up was
  time_point look_after_{};
  PacingStats stats_;
};

using Pacer = BasicPacer<>;

}  // namespace cbuf
