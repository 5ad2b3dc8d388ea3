// cbuf/wait.hpp - waiting for new rows: a futex on the shared mapping, and idle strategies for consumers.
//
// Design:
//   Roles: the producer (stores head, then wakes if anyone may sleep), consumers (announce, re-check, sleep on
//   the futex word). Words: Header::wait_word (bumped by the producer when it wakes), Header::waiters (a flag:
//   nonzero when some consumer may be sleeping). The producer never blocks and never takes a lock here.
//   Producer, after each head store:
//       if (waiters.load(relaxed) != 0) { waiters.store(0); wait_word.fetch_add(1); futex_wake(all) }
//   - one relaxed load of a line that only changes when a consumer goes to sleep, so it stays in the producer's
//   cache: no measurable cost while nobody waits.
//   Consumer: w = wait_word (acquire); waiters = 1 (seq_cst); if head moved: done; futex_wait(wait_word, w);
//   woken consumers that still need to wait announce themselves again. A wake between reading w and sleeping
//   changes wait_word, so futex_wait returns at once. Because the producer clears the flag, a consumer killed
//   while asleep costs the producer one wake-up, then nothing: no count is ever left stranded.
//   Registering is the only write a consumer ever makes, so it is done through a separate writable mapping of
//   the header page alone (RawConsumer opens it on the first blocking wait, if the file is writable to it);
//   a consumer with read permission only falls back to kBackoffSleep, and says so.
//   The one race left: without a store-load fence after its head store (which would cost every write), the
//   producer's flag check may be satisfied from before a consumer announced itself while the consumer reads
//   the head from before the store. That consumer would miss the wake, so consumers never sleep longer than
//   kMaxSleepSlice at a time before re-checking the head: a missed wake costs at most that, and it takes the
//   two operations to meet within the store-buffer drain window (nanoseconds).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include "cbuf/format.hpp"
#include "cbuf/os.hpp"

namespace cbuf {

// The longest a blocked consumer sleeps before it re-checks the head (bounds the one race in Design).
inline constexpr std::chrono::microseconds kMaxSleepSlice{1000};
// kBlock: polls (with a CPU pause) before sleeping on the futex.
inline constexpr std::uint32_t kSpinBeforeBlock = 1000;
// kSpinThenYield: polls before each further poll also yields the CPU.
inline constexpr std::uint32_t kSpinBeforeYield = 1000;
// kBackoffSleep: polls, then polls with a yield, then sleeps doubling from the first to the longest sleep.
inline constexpr std::uint32_t kBackoffSpins = 100;
inline constexpr std::uint32_t kBackoffYields = 900;
inline constexpr std::chrono::microseconds kBackoffFirstSleep{1};
inline constexpr std::chrono::microseconds kBackoffLongestSleep{1000};

namespace detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace detail

// The producer's side: called after every head store. Costs one relaxed load when nobody waits.
inline void wake_waiters(Header* h) noexcept {
  const HeaderWords words(h);
  auto waiters = words.waiters();
  if (waiters.load(std::memory_order_relaxed) == 0) return;  // see Design: the bounded race
  waiters.store(0, std::memory_order_relaxed);  // sleepers that still need to wait announce themselves again
  words.wait_word().fetch_add(1, std::memory_order_release);
  os::futex_wake_all(words.futex_word());
}

// How a consumer spends the time between polls.
enum class Idle : std::uint8_t {
  kBusySpin,       // lowest latency, burns a core
  kSpinThenYield,  // spin briefly, then sched_yield
  kBackoffSleep,   // spin, yield, then sleep with exponential backoff up to 1 ms
  kBlock,          // futex: sleep until the producer writes (wakes within microseconds)
};

// Waits until `ready()` is true or `timeout` passes, using the strategy. `h` is a writable view of the
// buffer's header, needed by kBlock only (nullptr: kBlock behaves as kBackoffSleep). `ready` must be cheap and
// must look at the head (or the next slot). Returns ready().
template <class Ready>
bool wait_until(Header* h, Idle idle, std::chrono::nanoseconds timeout, Ready&& ready) {
  if (idle == Idle::kBlock && h == nullptr) idle = Idle::kBackoffSleep;
  using Clock = std::chrono::steady_clock;
  if (ready()) return true;
  const auto deadline = Clock::now() + timeout;
  std::uint32_t spins = 0;
  std::chrono::microseconds sleep = kBackoffFirstSleep;
  for (;;) {
    const auto now = Clock::now();
    if (now >= deadline) return ready();
    switch (idle) {
      case Idle::kBusySpin:
        break;
      case Idle::kSpinThenYield:
        if (++spins > kSpinBeforeYield) std::this_thread::yield();
        break;
      case Idle::kBackoffSleep:
        if (++spins > kBackoffSpins + kBackoffYields) {
          std::this_thread::sleep_for(std::min(sleep, std::chrono::duration_cast<std::chrono::microseconds>(deadline - now)));
          sleep = std::min(sleep * 2, kBackoffLongestSleep);
        } else if (spins > kBackoffSpins) {
          std::this_thread::yield();
        }
        break;
      case Idle::kBlock: {
        // Spin a little first: while rows keep coming, a reader that catches up would otherwise fall asleep
        // and make the producer's next write pay for a futex wake-up.
        if (++spins <= kSpinBeforeBlock) {
          detail::cpu_relax();
          break;
        }
        const HeaderWords words(h);
        const std::uint32_t w = words.wait_word().load(std::memory_order_acquire);
        words.waiters().store(1, std::memory_order_seq_cst);  // announce before the re-check (Design)
        if (!ready()) {
          const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now);
          os::futex_wait(words.futex_word(), w, std::min<std::chrono::nanoseconds>(left, kMaxSleepSlice));
        }
        break;
      }
    }
    if (ready()) return true;
  }
}

}  // namespace cbuf
