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
// Two copy forms of the payload, one protocol (the same words in the same order; readers of either form read
// rows written by either):
//
//   kFences (optimized builds): the payload is copied with memcpy (vector loads and stores) between fences -
//     writer:  seq.store(2n+1, relaxed); fence(release); memcpy(slot, row); seq.store(2n+2, release)
//     reader:  s1 = seq.load(acquire); memcpy(row, slot); fence(acquire); s2 = seq.load(relaxed)
//              valid iff s1 == s2 == 2n+2
//     This is H.-J. Boehm's form ("Can seqlocks get along with programming language memory models?", MSPC
//     2012), the Linux kernel's seqcount (write_seqcount_begin's smp_wmb, read_seqcount_retry's smp_rmb) and
//     rigtorp's Seqlock. Why it is correct in practice: the writer's release fence orders the odd sequence
//     store before every payload store, and the reader's acquire fence orders every payload load before the
//     re-load of the sequence word. So if the reader's copy saw any byte of a later write m, the odd value
//     2m+1 (or anything after it) is visible to the re-load, s2 != s1, and the copy is discarded. On x86-64
//     both fences are compiler barriers only; on AArch64 they are DMB ISHST / DMB ISHLD class barriers.
//     What the C++ standard does and does not promise: fences order atomic operations; the payload bytes here
//     are plain memory, so a copy racing with a write is, to the abstract machine, a data race and undefined
//     behaviour, even though the torn copy is never used. Boehm's paper states the fix (payload accesses as
//     relaxed atomics), and WG21 P1478 proposes std::atomic_load_per_byte_memcpy / atomic_store_per_byte_memcpy
//     to say exactly this in the language; until then every seqlock in production (the kernel, Folly, rigtorp,
//     Abseil's flags) relies on compilers treating memcpy to and from shared memory as opaque byte copies,
//     which GCC and Clang do. The payload is never interpreted before the re-check succeeds.
//
//   kAtomicWords (ThreadSanitizer builds, or -DCBUF_SEQLOCK_ATOMIC_WORDS=1): the payload is copied as 64-bit
//     atomics, writer release stores and reader acquire loads, with no fences -
//     writer:  seq.store(2n+1, relaxed); payload words store(release); seq.store(2n+2, release)
//     reader:  s1 = seq.load(acquire); payload words load(acquire); s2 = seq.load(relaxed)
//     If a payload load sees a word of a later write m, that release store synchronises with the acquire load,
//     so the odd store 2m+1 happens-before the re-check and s2 != s1. Every access is atomic, so this form is
//     strictly conforming C++ - and ThreadSanitizer, which does not model std::atomic_thread_fence, checks it
//     without suppressions. It costs a word-by-word copy: 801 instructions to write a 1 KiB row against about
//     150 with memcpy (./dev.sh instructions).
//
// Both forms are templates (write_row<F>, read<F>), so one binary can run and benchmark both; kCopyForm is the
// one the runtime uses.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "cbuf/format.hpp"

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

enum class CopyForm : std::uint8_t { kFences, kAtomicWords };

#if defined(CBUF_SEQLOCK_ATOMIC_WORDS) && CBUF_SEQLOCK_ATOMIC_WORDS
inline constexpr CopyForm kCopyForm = CopyForm::kAtomicWords;
#else
inline constexpr CopyForm kCopyForm = detail::kThreadSanitizer ? CopyForm::kAtomicWords : CopyForm::kFences;
#endif

static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free,
              "sequence words and payload words cross processes: they must be lock-free 64-bit atomics");

constexpr std::uint64_t committed(std::uint64_t n) noexcept { return 2 * n + 2; }
constexpr std::uint64_t writing(std::uint64_t n) noexcept { return 2 * n + 1; }
// Format 1.1: row n was skipped - the producer marked it lost without writing it (RingWriter::skip). The value
// is committed(n) + 1, above committed(n), so a 1.0 reader takes it for "overwritten": lost, as it should.
constexpr std::uint64_t skipped(std::uint64_t n) noexcept { return 2 * n + 3; }

enum class SlotStatus : std::uint8_t {
  kOk,           // the copy is row n, complete and untorn
  kNotYet,       // row n is not committed in this slot yet
  kOverwritten,  // a later row owns (or is taking) the slot: row n is lost
  kSkipped,      // row n was never written: the producer marked it lost (format 1.1)
};

// Classifies the sequence word `s` observed for row n (see the table in the Design block).
constexpr SlotStatus classify(std::uint64_t s, std::uint64_t n) noexcept {
  const auto d = static_cast<std::int64_t>(s - committed(n));
  if (d == 0) return SlotStatus::kOk;
  if (d < 0) return SlotStatus::kNotYet;
  return d == 1 ? SlotStatus::kSkipped : SlotStatus::kOverwritten;
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

// Writer, step 1: mark row n in progress. Relaxed: what follows (the release fence, or the release payload
// stores) orders it before the payload.
inline void begin_write(std::byte* slot, std::uint64_t n) noexcept {
  detail::word(slot).store(writing(n), std::memory_order_relaxed);
}

// Writer, step 2, in form F: the payload into the slot after begin_write. kFences copies exactly `size` bytes
// (the slot's padding is zero from the file's creation and no write touches it); kAtomicWords writes whole
// words, the tail zero-padded.
template <CopyForm F = kCopyForm>
inline void copy_in(std::byte* slot, const std::byte* row, std::size_t size) noexcept {
  if constexpr (F == CopyForm::kFences) {
    std::atomic_thread_fence(std::memory_order_release);  // the odd sequence value before every payload store
    std::memcpy(slot + kSeqSize, row, size);
  } else {
    store_payload(slot + kSeqSize, row, size);
  }
}

// Writer, step 3: commit row n. Release: a reader that sees 2n+2 (acquire) sees the whole payload.
inline void end_write(std::byte* slot, std::uint64_t n) noexcept {
  detail::word(slot).store(committed(n), std::memory_order_release);
}

// Instead of the three steps: row n is skipped (format 1.1). Release, like a commit: a reader that sees it sees
// the head that covers it in order.
inline void mark_skipped(std::byte* slot, std::uint64_t n) noexcept {
  detail::word(slot).store(skipped(n), std::memory_order_release);
}

// The three steps: row n (size bytes from `row`) into `slot`.
template <CopyForm F = kCopyForm>
inline void write_row(std::byte* slot, std::uint64_t n, const std::byte* row, std::size_t size) noexcept {
  begin_write(slot, n);
  copy_in<F>(slot, row, size);
  end_write(slot, n);
}

// Reader, the copy between the two loads of the sequence word, in form F. After it, the re-load of the
// sequence word is ordered after every payload load (the acquire fence, or the acquire payload loads).
template <CopyForm F = kCopyForm>
inline void copy_out(std::byte* dst, const std::byte* slot, std::size_t size) noexcept {
  if constexpr (F == CopyForm::kFences) {
    std::memcpy(dst, slot + kSeqSize, size);
    std::atomic_thread_fence(std::memory_order_acquire);  // every payload load before the re-check
  } else {
    load_payload(dst, slot + kSeqSize, size);
  }
}

// Reader: copies row n out of `slot` into `dst` (row_size bytes) and says whether the copy is valid.
// On anything but kOk the contents of dst are unspecified.
template <CopyForm F = kCopyForm>
inline SlotStatus read(const std::byte* slot, std::uint64_t n, std::byte* dst, std::size_t row_size) noexcept {
  const std::uint64_t s1 = load_seq(slot, std::memory_order_acquire);  // pairs with end_write's release
  const SlotStatus st = classify(s1, n);
  if (st != SlotStatus::kOk) return st;
  copy_out<F>(dst, slot, row_size);
  const std::uint64_t s2 = load_seq(slot, std::memory_order_relaxed);  // ordered after the copy (copy_out)
  // The only way s2 can differ from s1 is a later write having started: row n is lost, never "retry later".
  return s2 == s1 ? SlotStatus::kOk : SlotStatus::kOverwritten;
}

}  // namespace cbuf::seqlock
