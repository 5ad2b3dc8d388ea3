// cbuf/pacing.hpp - when a streaming reader leaves the ring alone for a while (ConsumerOptions::pace).
//
// A reader that catches up with a producer faster than its own polls keeps taking the producer's working cache
// lines away from it, one row at a time (a 64 B producer with one such reader ran at a third of its speed).
// When, several times in a row, new rows are there within a few looks after catching up, the reader is
// *paced*: after catching up it leaves the ring alone for `pace` and then reads what gathered in one batch,
// behind the producer instead of at its heels. A look that finds nothing, or a paced look that finds only a few
// rows (a request/reply exchange, not a stream), ends it. docs/how-it-works.md, "Many readers".
//
// The Pacer is the policy only: it never touches the ring. Its owner (RawConsumer) asks holding() before a look,
// reports each look with after_look(), sits out pausing() up to look_after() before a wait, and reports the
// wait with waited().
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace cbuf {

class Pacer {
 public:
  using Clock = std::chrono::steady_clock;

  // 0 turns pacing off (the reader is never paced).
  void set(std::chrono::nanoseconds pace) noexcept {
    pace_ = pace;
    streak_ = 0;
  }
  bool enabled() const noexcept { return pace_.count() > 0; }
  // Paced: after catching up the reader pauses for `pace` before looking again.
  bool paced() const noexcept { return streak_ >= streak_needed_; }
  // Paced and caught up: the next look waits for look_after().
  bool pausing() const noexcept { return pausing_; }
  Clock::time_point look_after() const noexcept { return look_after_; }

  // Before a look: true while a pause is running (the look is skipped, without touching the ring).
  bool holding() const noexcept { return pausing_ && Clock::now() < look_after_; }

  // After a look that returned `count` of at most `max` rows (`lost`: it reported rows lost). `gathered()`
  // says how many rows came since the pause began, asked only after a pause. A reader that stays behind (a
  // full batch, nothing pending) has nothing to learn: that case costs one comparison.
  template <class Gathered>
  [[gnu::always_inline]] void after_look(std::size_t count, bool lost, std::size_t max, Gathered gathered) noexcept {
    if (enabled() && (count < max || caught_up_ || pausing_ || empty_looks_ != 0)) learn(count, lost, max, gathered);
  }

 private:
  // after_look's bookkeeping, out of line: the reader's hot path stays small.
  template <class Gathered>
  [[gnu::noinline]] void learn(std::size_t count, bool lost, std::size_t max, Gathered gathered) noexcept {
    const bool was_paced = paced();
    const bool after_pause = pausing_;
    pausing_ = false;
    if (count == 0 && !lost) {
      if (after_pause) streak_ = 0;  // the pause gathered nothing: the stream stopped
      if (!caught_up_) arm_pause();   // an empty look is a catch-up too (after a batch of exactly `max`)
      caught_up_ = true;
      if (empty_looks_ < kHotLooks + 1) ++empty_looks_;
      return;
    }
    if (after_pause) {
      if (gathered() < kPacedMinRows) {  // the pause gathered almost nothing: a request/reply, not a stream
        streak_ = 0;
        streak_needed_ = std::min(streak_needed_ * 2, kMaxStreak);
      } else {
        streak_needed_ = kMinStreak;
      }
    } else if (caught_up_ && !was_paced) {
      // Rows within a few looks of catching up: the producer is outrunning this reader's polls.
      streak_ = empty_looks_ <= kHotLooks ? streak_ + 1 : 0;
    }
    empty_looks_ = 0;
    caught_up_ = count < max;
    if (caught_up_) arm_pause();
  }

 public:
  // After a wait that ran for `how_long` after the pause: as good as an empty look if short, the end of pacing
  // if longer than the pause (rows are not outrunning this reader).
  void waited(std::chrono::nanoseconds how_long) noexcept {
    if (how_long > pace_) {
      streak_ = 0;
      pausing_ = false;
      empty_looks_ = kHotLooks + 1;
    } else if (empty_looks_ < kHotLooks + 1) {
      ++empty_looks_;
    }
  }

  static constexpr std::uint32_t kHotLooks = 16;      // empty looks after a catch-up that still count as "at once"
  static constexpr std::uint32_t kMinStreak = 8;      // such catch-ups in a row before pacing starts
  static constexpr std::uint32_t kMaxStreak = 4096;   // ... doubled each time a pause gathered almost nothing
  static constexpr std::uint64_t kPacedMinRows = 16;  // what a pause must gather to be worth it

 private:
  void arm_pause() noexcept {
    if (!paced()) return;
    look_after_ = Clock::now() + pace_;
    pausing_ = true;
  }

  std::chrono::nanoseconds pace_{0};  // 0: never paced
  std::uint32_t streak_ = 0;          // catch-ups followed at the next look by new rows
  std::uint32_t streak_needed_ = kMinStreak;
  std::uint32_t empty_looks_ = 0;     // looks in a row that found nothing (up to kHotLooks + 1)
  bool caught_up_ = false;            // the last look read everything there was
  bool pausing_ = false;              // paced: the next look is the first after a pause
  Clock::time_point look_after_{};
};

}  // namespace cbuf
