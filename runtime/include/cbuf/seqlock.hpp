// cbuf/seqlock.hpp - the row version protocol: one sequence word per slot.
//
// Design:
//   Roles: one producer (writes every slot and its sequence word), any number of consumers in other threads or
//   processes (read only, never write shared memory). A slot is [u64 seq][row bytes][padding to 8].
//   Sequence values are a pure function of the row index n (all arithmetic modulo 2^64):
//       0          the slot was never written
//       2n + 1     row n is being written (odd)
//       2n + 2     row n is committed (even)
//   so a reader that wants row n and loads s from the slot can tell, with d = int64(s - (2n + 2)):
//       d == 0  committed row n          d < 0  not written yet (or row n being written)
//       d > 0   overwritten by a later row (lapped): row n is gone for good - sequence words never go back.
//
// Memory model (H.-J. Boehm, "Can seqlocks get along with programming language memory models?", MSPC 2012;
// WG21 P1478; Abseil's absl/flags/internal/sequence_lock.h is the fence-based form of the same protocol):
//   writer:  seq.store(2n+1, relaxed); payload words store(release); seq.store(2n+2, release)
//   reader:  s1 = seq.load(acquire); payload words load(acquire); s2 = seq.load(relaxed);
//            valid iff s1 == s2 == 2n+2
//   Why it is enough: if a payload load of the reader sees a word of a later write m, that word's release store
//   synchronises with the reader's acquire load, so the odd store 2m+1 (sequenced before it in the writer)
//   happens-before the re-check, and s2 != s1: a torn copy is never accepted. The acquire payload loads also
//   keep the re-check from moving above them. The payload is copied as 64-bit atomics, so the race between the
//   writer and readers is defined behaviour.
//   Why per-word release/acquire instead of Boehm's relaxed words between two fences: ThreadSanitizer does not
//   model std::atomic_thread_fence, while it does model acquire/release on each word - so the TSan build checks
//   exactly the code that ships, without suppressions. On x86-64 (TSO) both forms compile to the same plain
//   MOVs; on AArch64 this form costs LDAR/STLR per word, and the fence form would be the one to measure there.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace cbuf::detail {
// True in a ThreadSanitizer build (GCC defines __SANITIZE_THREAD__, Clang has the feature test). A constant,
// not a macro, so that nothing leaks into the code that includes cbuf.
#if defined(__SANITIZE_THREAD__)
inline constexpr bool kThreadSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool kThreadSanitizer = true;
#else
inline constexpr bool kThreadSanitizer = false;
#endif
#else
inline constexpr bool kThreadSanitizer = false;
#endif
}  // namespace cbuf::detail

namespace cbuf::seqlock {

inline constexpr std::size_t kSeqOffset = 8;  // row bytes start after the sequence word

static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free,
              "sequence words and payload words cross processes: they must be lock-free 64-bit atomics");

constexpr std::uint64_t committed(std::uint64_t n) noexcept { return 2 * n + 2; }
constexpr std::uint64_t writing(std::uint64_t n) noexcept { return 2 * n + 1; }

enum class SlotStatus : std::uint8_t {
  kOk,           // the copy is row n, complete and untorn
  kNotYet,       // row n is not committed in this slot yet
  kOverwritten,  // a later row owns (or is taking) the slot: row n is lost
};

// Classifies the sequence word `s` observed for row n (see the table in the Design block).
constexpr SlotStatus classify(std::uint64_t s, std::uint64_t n) noexcept {
  const auto d = static_cast<std::int64_t>(s - committed(n));
  return d == 0 ? SlotStatus::kOk : (d < 0 ? SlotStatus::kNotYet : SlotStatus::kOverwritten);
}

namespace detail {
// Atomic view of a word in the (possibly read-only) mapping. A load never writes, so casting away const
// to build the atomic_ref is sound even on a PROT_READ page (64-bit atomic loads are plain loads).
inline std::atomic_ref<std::uint64_t> word(const std::byte* p) noexcept {
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(const_cast<std::byte*>(p)));
}
}  // namespace detail

inline std::uint64_t load_seq(const std::byte* slot, std::memory_order mo) noexcept {
  return detail::word(slot).load(mo);
}

// Copies `size` payload bytes from shared memory as acquire 64-bit atomic loads. `src` is 8-aligned and
// readable up to round_up(size, 8); `dst` may have any alignment.
inline void load_payload(std::byte* dst, const std::byte* src, std::size_t size) noexcept {
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    const std::uint64_t w = detail::word(src + i).load(std::memory_order_acquire);
    std::memcpy(dst + i, &w, 8);
  }
  if (i < size) {
    const std::uint64_t w = detail::word(src + i).load(std::memory_order_acquire);
    std::memcpy(dst + i, &w, size - i);
  }
}

// Stores `size` bytes into shared memory as release 64-bit atomic stores (each orders the slot's odd
// sequence value before itself). The tail word is zero-padded, so
// slot padding never carries stale bytes.
inline void store_payload(std::byte* dst, const std::byte* src, std::size_t size) noexcept {
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, src + i, 8);
    detail::word(dst + i).store(w, std::memory_order_release);
  }
  if (i < size) {
    std::uint64_t w = 0;
    std::memcpy(&w, src + i, size - i);
    detail::word(dst + i).store(w, std::memory_order_release);
  }
}

// Writer, step 1: mark row n in progress. Relaxed: the release payload stores that follow order it.
inline void begin_write(std::byte* slot, std::uint64_t n) noexcept {
  detail::word(slot).store(writing(n), std::memory_order_relaxed);
}

// Writer, step 3: commit row n. Release: a reader that sees 2n+2 (acquire) sees the whole payload.
inline void end_write(std::byte* slot, std::uint64_t n) noexcept {
  detail::word(slot).store(committed(n), std::memory_order_release);
}

// Reader: copies row n out of `slot` into `dst` (row_size bytes) and says whether the copy is valid.
// On anything but kOk the contents of dst are unspecified.
inline SlotStatus read(const std::byte* slot, std::uint64_t n, std::byte* dst, std::size_t row_size) noexcept {
  const std::uint64_t s1 = load_seq(slot, std::memory_order_acquire);  // pairs with end_write's release
  const SlotStatus st = classify(s1, n);
  if (st != SlotStatus::kOk) return st;
  load_payload(dst, slot + kSeqOffset, row_size);
  const std::uint64_t s2 = load_seq(slot, std::memory_order_relaxed);  // kept below by the acquire payload loads
  // The only way s2 can differ from s1 is a later write having started: row n is lost, never "retry later".
  return s2 == s1 ? SlotStatus::kOk : SlotStatus::kOverwritten;
}

}  // namespace cbuf::seqlock
