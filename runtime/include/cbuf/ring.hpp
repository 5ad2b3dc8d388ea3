// cbuf/ring.hpp - producer and consumer logic over mapped bytes. No system calls here: waking consumers that
// sleep on the futex is the producer's step after a write (producer.hpp, wait.hpp).
//
// Design:
//   Roles: one RingWriter (the producer process) and any number of RingReaders (other threads or processes,
//   each with its own cursor, mapping the file read-only). The writer owns every slot and the head; readers
//   write nothing shared.
//   head: 64-bit count of committed rows = index of the next row to write, alone on its cache lines, stored
//   only by the writer with release ordering after the row's sequence word, monotonic, starting at base_index.
//   Row n lives in slot n mod capacity; its sequence word protocol is in seqlock.hpp.
//   Valid range at a given head h: [max(base, h - capacity), h). Row h - capacity may already be under
//   overwrite by row h; the sequence word says so and the reader counts it as lost.
//   A lapped reader (cursor < h - capacity, or a row found overwritten) is told exactly which rows it lost -
//   always a contiguous range starting at its cursor - and continues at the oldest row still valid. If it is
//   lapped again before it has read capacity/8 rows past that point, it is racing the producer for the slots
//   the producer is about to overwrite (slowing both, and lapped over and over): it then resumes capacity/8
//   rows after the oldest row instead, off the producer's cache lines.
//   The writer never reads anything a reader writes: readers cannot slow it down or block it.
#pragma once

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "cbuf/format.hpp"
#include "cbuf/seqlock.hpp"

namespace cbuf {

// Rows [first, first + count) were lost: overwritten before this reader got to them.
struct Gap {
  std::uint64_t first = 0;
  std::uint64_t count = 0;
  explicit operator bool() const noexcept { return count != 0; }
  std::uint64_t end() const noexcept { return first + count; }
};

// A following consumer moved to a new producer of its buffer's name (ConsumerOptions::follow): the old epoch
// ended at index old_end - every row below it was received or reported lost - and the new one starts at
// new_start (its base index; rows the reader then finds overwritten are reported lost as usual).
struct Restart {
  std::uint64_t old_epoch = 0;
  std::uint64_t new_epoch = 0;
  std::uint64_t old_end = 0;
  std::uint64_t new_start = 0;
  bool schema_changed = false;  // the new buffer holds another schema (fingerprint or row size)
  explicit operator bool() const noexcept { return new_epoch != 0; }
};

// Result of one cursor step: a lost range (possibly empty) and then, if has_row, row `index`.
struct Next {
  bool has_row = false;
  std::uint64_t index = 0;
  Gap lost;
  Restart restart;  // set on the step that moved to a new epoch (no row then)
};

// Result of a batch read: `count` consecutive rows [first, first + count), preceded by the lost range.
struct Batch {
  std::uint64_t first = 0;
  std::size_t count = 0;
  Gap lost;
  Restart restart;  // set on the batch that moved to a new epoch (no rows then)
};

// Result of random access to one row.
enum class ReadStatus : std::uint8_t {
  kOk,           // row copied and validated
  kNotYet,       // index >= head: not written yet
  kOverwritten,  // index < oldest valid row (or overwritten during the copy)
  kBeforeBase,   // index < base_index: this producer never wrote it
};

// ---------------------------------------------------------------------------------------------------------
// Writer: the producer's hot path. Never blocks, never allocates, never throws.
class RingWriter {
 public:
  RingWriter() = default;
  // `layout` is the producer's own copy of the geometry: nothing is read back from shared memory, which
  // another process could rewrite.
  RingWriter(Header* header, std::byte* data, const Layout& layout, std::uint64_t first_index) noexcept
      : words_(header),
        data_(data),
        capacity_(layout.capacity),
        slot_size_(layout.slot_size),
        row_size_(layout.row_size),
        next_(first_index),
        slot_(next_ % capacity_) {}

  std::uint64_t next_index() const noexcept { return next_; }
  std::uint32_t row_size() const noexcept { return row_size_; }

  // Copies one row (row_size bytes) into the next slot and publishes it. Returns its index.
  std::uint64_t write(const void* row) noexcept {
    const std::uint64_t n = next_;
    write_slot(n, static_cast<const std::byte*>(row));
    publish(n + 1);
    return n;
  }

  // Writes `count` rows stored back to back (row_size bytes apart); publishes the head once. Returns the
  // index of the first row.
  std::uint64_t write_batch(const void* rows, std::size_t count) noexcept {
    const std::uint64_t first = next_;
    const auto* p = static_cast<const std::byte*>(rows);
    switch (row_size_) {  // the common small sizes copy inline (write_fixed)
      case 8: write_fixed<8>(p, count); break;
      case 16: write_fixed<16>(p, count); break;
      case 24: write_fixed<24>(p, count); break;
      case 32: write_fixed<32>(p, count); break;
      case 40: write_fixed<40>(p, count); break;
      case 48: write_fixed<48>(p, count); break;
      case 56: write_fixed<56>(p, count); break;
      case 64: write_fixed<64>(p, count); break;
      case 96: write_fixed<96>(p, count); break;
      case 128: write_fixed<128>(p, count); break;
      default:
        for (std::size_t i = 0; i < count; ++i, p += row_size_) write_slot(first + i, p);
    }
    if (count) publish(first + count);
    return first;
  }

  // Marks rows [next, next + count) lost without writing them, and publishes the head past them: readers report
  // them lost, exactly as if they had been overwritten (format 1.1; a 1.0 reader does the same). Only the last
  // `capacity` of them touch a slot. Returns the index the next write gets. For relays that keep their
  // source's row indices (cbuf bridge sub): a gap in the source becomes a gap here.
  std::uint64_t skip(std::uint64_t count) noexcept {
    assert(!claimed_ && "skip() between claim() and commit()");
    if (count == 0) return next_;
    const std::uint64_t end = next_ + count;
    if (count > capacity_) {
      next_ = end - capacity_;
      slot_ = next_ % capacity_;
    }
    for (; next_ < end; advance()) seqlock::mark_skipped(slot_ptr(), next_);
    publish(end);
    return end;
  }

  // Zero-copy write: marks the next slot in progress and returns its row bytes for the caller to fill, then
  // commit() publishes it. Between claim() and commit() readers see the row as "not yet written". In the
  // fence form (seqlock.hpp) the caller's stores are the payload copy: the release fence keeps the odd
  // sequence value ahead of them, commit()'s release store keeps them ahead of the even value. In the
  // atomic-word form (ThreadSanitizer builds) the caller fills a private staging row that commit() stores
  // word by word.
  std::span<std::byte> claim() noexcept {
    assert(!claimed_ && "claim() twice without commit()");
    claimed_ = true;
    std::byte* slot = slot_ptr();
    seqlock::begin_write(slot, next_);
    if constexpr (seqlock::kCopyForm == seqlock::CopyForm::kAtomicWords) {
      staging_.assign(row_size_, std::byte{0});
      return {staging_.data(), row_size_};
    }
    std::atomic_thread_fence(std::memory_order_release);  // odd sequence value before the caller's stores
    return {slot + kSeqSize, row_size_};
  }

  std::uint64_t commit() noexcept {
    assert(claimed_ && "commit() without claim()");
    claimed_ = false;
    const std::uint64_t n = next_;
    std::byte* slot = slot_ptr();
    if constexpr (seqlock::kCopyForm == seqlock::CopyForm::kAtomicWords)
      seqlock::store_payload(slot + kSeqSize, staging_.data(), row_size_);
    seqlock::end_write(slot, n);
    advance();
    publish(n + 1);
    return n;
  }

 private:
  std::byte* slot_ptr() const noexcept { return data_ + slot_ * slot_size_; }
  void advance() noexcept {  // next_ and slot_ together
    ++next_;
    if (++slot_ == capacity_) slot_ = 0;  // no division on the hot path
  }
  void write_slot(std::uint64_t n, const std::byte* row) noexcept {
    seqlock::write_row(slot_ptr(), n, row, row_size_);
    advance();
  }
  // write_batch for rows of N bytes, N known at compile time: the payload copy is inlined instead of a memcpy
  // call per row, which for small rows costs about as much as the copy (64 B rows: 33 -> 27 instructions, and
  // write_batch from Python went from 2.4x to 1.7x the time of np.copyto of the same bytes).
  template <std::size_t N>
  void write_fixed(const std::byte* p, std::size_t count) noexcept {
    for (std::size_t i = 0; i < count; ++i, p += N) {
      seqlock::write_row(slot_ptr(), next_, p, N);
      advance();
    }
  }
  void publish(std::uint64_t head) noexcept {
    // Release: a reader that loads this head (acquire) sees every sequence word committed before it.
    words_.head().store(head, std::memory_order_release);
  }

  HeaderWords words_;
  std::byte* data_ = nullptr;
  std::uint64_t capacity_ = 0;
  std::uint64_t slot_size_ = 0;
  std::uint32_t row_size_ = 0;
  std::uint64_t next_ = 0;
  std::uint64_t slot_ = 0;
  bool claimed_ = false;
  std::vector<std::byte> staging_;  // claim()'s row in the atomic-word form only
};

// ---------------------------------------------------------------------------------------------------------
// Reader: validated reads, a cursor and the lap rule - nothing else (pacing is the consumer's: pacing.hpp).
// Never blocks, never allocates, never throws.
class RingReader {
 public:
  RingReader() = default;
  // `layout` and `base_index` are the reader's validated copies of the header (consumer.hpp): the geometry is
  // never read from shared memory again, so a writer that rewrites the header after attach cannot steer a copy
  // outside [data, data + capacity * slot_size). Only the head and the sequence words are read from shared
  // memory afterwards, and neither is used as an address without the modulo by the private capacity.
  RingReader(const Header* header, const std::byte* data, const Layout& layout, std::uint64_t base_index) noexcept
      : words_(header),
        data_(data),
        capacity_(layout.capacity),
        slot_size_(layout.slot_size),
        row_size_(layout.row_size),
        base_(base_index),
        cursor_(base_) {}

  std::uint32_t row_size() const noexcept { return row_size_; }
  std::uint64_t capacity() const noexcept { return capacity_; }
  std::uint64_t base_index() const noexcept { return base_; }

  // Committed rows so far (the next index the producer writes), as shared memory says. Acquire: pairs with
  // the writer's release, so every row below the returned value is visible.
  std::uint64_t head() const noexcept { return words_.head().load(std::memory_order_acquire); }
  // A head below base_index or beyond kIndexLimit is a damaged or forged header (format.hpp): no producer
  // writes one. The reads below stay within [base_index, kIndexLimit) whatever the head says; the consumer
  // reports the header corrupt. saw_corrupt_head(): read_new() met such a head since the last seek.
  bool saw_corrupt_head() const noexcept { return corrupt_head_; }

  // Oldest row index still (probably) valid at head h.
  std::uint64_t oldest(std::uint64_t h) const noexcept {
    return h - base_ > capacity_ ? h - capacity_ : base_;
  }

  // Random access: copies row n into dst (row_size bytes) if it is still valid.
  ReadStatus read(std::uint64_t n, void* dst) const noexcept {
    if (n < base_) return ReadStatus::kBeforeBase;
    const std::uint64_t h = bounded_head();
    if (n >= h) return ReadStatus::kNotYet;
    if (n < oldest(h)) return ReadStatus::kOverwritten;
    return copy_row(n, dst) ? ReadStatus::kOk : ReadStatus::kOverwritten;
  }

  // Copies the newest row written into dst (skipped rows are not rows) and returns true with its index, or
  // false when no row was written (or, on a tiny ring being lapped continuously, no row could be read intact
  // within a few tries).
  bool latest(void* dst, std::uint64_t* index = nullptr) const noexcept {
    for (int attempt = 0; attempt < kRetries; ++attempt) {
      const std::uint64_t h = bounded_head();
      const std::uint64_t end = newest_end(h);
      if (end == oldest(h)) return false;  // nothing written, or only skipped rows kept
      if (read_slot(end - 1, dst) == seqlock::SlotStatus::kOk) {
        if (index) *index = end - 1;
        return true;
      }
    }
    return false;
  }

  // Copies up to `n` newest rows, oldest first, into dst (n * row_size bytes): the newest consecutive run,
  // ending at the newest row written (skipped rows are not rows). Returns the rows copied: [first, first +
  // count). Rows overwritten during the copy, or skipped, end the run at the front, so every returned row is
  // validated and the indices are consecutive.
  Batch last(std::size_t n, void* dst) const noexcept {
    const std::uint64_t h = bounded_head();
    const std::uint64_t end = newest_end(h);
    return copy_range(n < end - base_ ? end - n : base_, end, h, dst, Run::kNewest);
  }

  // Copies rows of [a, b) into dst ((b - a) * row_size bytes): the first consecutive run of valid rows. Rows
  // before it - overwritten, skipped, or below base_index - are left out (the caller reports [a, first) lost,
  // like read_new); the run ends at b, at the first row not yet written, or at a skipped row after it (the
  // next call, from first + count, reports that one lost).
  Batch rows(std::uint64_t a, std::uint64_t b, void* dst) const noexcept {
    return copy_range(a, b, bounded_head(), dst, Run::kFirst);
  }

  // --- cursor
  std::uint64_t cursor() const noexcept { return cursor_; }
  // The cursor may start anywhere: rows below base_index (this producer never wrote them) are reported lost by
  // the first step, like rows overwritten (docs/format.md section 6), so delivered + lost = end - start.
  void seek(std::uint64_t index) noexcept {
    cursor_ = std::min(index, kIndexLimit);
    race_until_ = 0;
    corrupt_head_ = false;
    idle_polls_ = kHeadCheckPeriod - 1;  // the first look consults the head (a cursor below base finds no row)
  }
  void seek_oldest() noexcept { seek(oldest(bounded_head())); }
  // The newest committed row is the next one returned (or the first row to come, if none yet).
  void seek_newest() noexcept {
    const std::uint64_t h = bounded_head();
    seek(h == base_ ? h : h - 1);
  }
  // Only rows written from now on.
  void seek_end() noexcept { seek(bounded_head()); }
  // true: poll the head while caught up (kinder to a producer in a cache-resident ring); false (default):
  // poll the next slot's sequence word (lowest latency). See ConsumerOptions::poll.
  void poll_head(bool v) noexcept { poll_head_ = v; }

  // One cursor step: reports rows lost since the last step (if lapped) and copies the next row into dst.
  Next try_next(void* dst) noexcept {
    Batch b = read_new(dst, 1);
    return Next{b.count == 1, b.first, b.lost, {}};
  }

  // Copies up to `max` consecutive rows starting at the cursor into dst (max * row_size bytes). A lapped
  // cursor first jumps to the oldest valid row (or capacity/8 past it when racing the producer, see above),
  // and the rows it skipped are returned in Batch::lost.
  Batch read_new(void* dst, std::size_t max) noexcept {
    Batch b;  // filled in place: the one return value (a Batch is 72 bytes)
    read_new(b, dst, max);
    return b;
  }
  // The same into a Batch of the caller's (fresh: count 0, nothing lost), for callers that add to the step.
  [[gnu::always_inline]] void read_new(Batch& b, void* dst, std::size_t max) noexcept {
    b.first = b.lost.first = cursor_;
    if (max != 0) look(b, dst, max);
  }

  // Expert access, without any validation: the whole slot area (capacity slots of slot_size bytes, each the
  // sequence word and then the row), and the row bytes of the slot that would hold row n. The contents may be
  // torn, stale or in the middle of a write; nothing about them is guaranteed.
  std::span<const std::byte> slots() const noexcept { return {data_, capacity_ * slot_size_}; }
  std::span<const std::byte> raw_row_unvalidated(std::uint64_t n) const noexcept {
    return {slot_at(n) + kSeqSize, row_size_};
  }

 private:
  // One look at the ring for read_new, into b (b.first = b.lost.first = cursor, max > 0).
  [[gnu::always_inline]] void look(Batch& b, void* dst, std::size_t max) noexcept {
    auto* out = static_cast<std::byte*>(dst);
    // Head polling: while the cursor has caught up, look only at the head's line, never at the slot being
    // written - the producer then pays one line transfer per publish instead of several per row.
    if (poll_head_ && cursor_ >= known_head_ && cursor_ >= (known_head_ = head())) return;
    // Fast path: the slot's sequence word alone says whether row `cursor` is committed, so a reader that keeps
    // up never waits for the head's cache line - one line transfer per row instead of two.
    seqlock::SlotStatus st = seqlock::SlotStatus::kNotYet;
    while (b.count < max && (st = read_slot(cursor_, out + b.count * row_size_)) == seqlock::SlotStatus::kOk) {
      ++b.count;
      ++cursor_;
    }
    if (b.count > 0) {
      idle_polls_ = 0;
      return;
    }
    // "Not yet" in the slot means nothing new: the head is stored after the sequence word, so it cannot be
    // ahead. Only a damaged file could disagree; the head is consulted now and then to skip such a slot.
    if (st == seqlock::SlotStatus::kNotYet && (++idle_polls_ & (kHeadCheckPeriod - 1)) != 0) return;
    std::uint64_t h = head();
    if (corrupt(h)) [[unlikely]] {  // forged: read nothing outside [base, limit); the consumer reports it
      corrupt_head_ = true;
      h = std::clamp(h, base_, kIndexLimit);
    }
    if (st == seqlock::SlotStatus::kNotYet && cursor_ >= h) return;
    // Lapped (or a slot inconsistent with the head): resynchronise on the head.
    for (int attempt = 0; attempt < kRetries; ++attempt) {
      const std::uint64_t lo = oldest(h);
      if (cursor_ < lo) resume_after_lap(lo, h);  // the rows in between are lost
      b.first = cursor_;
      while (b.count < max && cursor_ < h) {
        const seqlock::SlotStatus at = read_slot(cursor_, out + b.count * row_size_);
        if (at == seqlock::SlotStatus::kOk) {
          ++b.count;
          ++cursor_;
        } else if (at == seqlock::SlotStatus::kSkipped && b.count == 0) {
          b.first = ++cursor_;  // the producer skipped it: lost, without spending a retry
        } else {
          break;
        }
      }
      if (b.count > 0 || cursor_ >= h) break;
      // The row at the cursor was overwritten while we looked: it is lost. Refresh the head and go on.
      ++cursor_;
      h = bounded_head();
    }
    if (b.count == 0) b.first = cursor_;
    b.lost.count = b.first - b.lost.first;
    idle_polls_ = 0;
  }

  static constexpr int kRetries = 64;
  static constexpr std::uint64_t kLapMarginDivisor = 8;  // the racing margin: capacity/8 rows

  // A lapped cursor resumes at the oldest row kept, lo. Row lo's slot is the one the producer writes next, so
  // if the cursor is lapped again before it gets a margin past its last resume point, it is racing the
  // producer for the same cache lines - both slow down and the reader stays lapped (a 1 KiB batch reader lost
  // 65-97% of the rows that way). Then it resumes a margin past lo instead. docs/format.md section 6.
  void resume_after_lap(std::uint64_t lo, std::uint64_t h) noexcept {
    const std::uint64_t margin = capacity_ / kLapMarginDivisor;
    cursor_ = cursor_ < race_until_ ? std::min(h, lo + margin) : lo;  // lo + margin < h: no overflow
    race_until_ = cursor_ > ~0ull - margin ? ~0ull : cursor_ + margin;
  }
  static constexpr std::uint32_t kHeadCheckPeriod = 64;  // power of two

  bool corrupt(std::uint64_t h) const noexcept { return h < base_ || h > kIndexLimit; }
  std::uint64_t bounded_head() const noexcept { return std::clamp(head(), base_, kIndexLimit); }

  // One past the newest row below head h that is not skipped: h, unless the producer skipped its last rows.
  // Reads sequence words only, never more than the capacity (a skip marks at most that many slots).
  std::uint64_t newest_end(std::uint64_t h) const noexcept {
    const std::uint64_t lo = oldest(h);
    std::uint64_t end = h;
    while (end > lo &&
           seqlock::classify(seqlock::load_seq(slot_at(end - 1), std::memory_order_acquire), end - 1) ==
               seqlock::SlotStatus::kSkipped)
      --end;
    return end;
  }

  // Which consecutive run copy_range returns when rows in the range are not valid.
  enum class Run : std::uint8_t {
    kNewest,  // the last run: any row that is not valid restarts it (last())
    kFirst,   // the first run: skipped rows before it are passed, a skipped row after it ends it (rows())
  };
  // Copies rows [a, b) clipped to what head h says may be valid, oldest first, into out. A row found
  // overwritten restarts the run after it (everything older is gone too); skipped rows as `run` says. The
  // result is one validated, consecutive run. Walks the slots with a pointer instead of one division per row.
  Batch copy_range(std::uint64_t a, std::uint64_t b, std::uint64_t h, void* dst, Run run) const noexcept {
    const std::uint64_t lo = std::max({a, oldest(h), base_});
    const std::uint64_t hi = std::min(b, h);
    Batch r{lo, 0, {}, {}};
    if (lo >= hi) return r;
    auto* out = static_cast<std::byte*>(dst);
    const std::byte* const end = data_ + capacity_ * slot_size_;
    const std::byte* slot = slot_at(lo);
    for (std::uint64_t n = lo; n < hi; ++n) {
      const seqlock::SlotStatus st = seqlock::read(slot, n, out + r.count * row_size_, row_size_);
      if (st == seqlock::SlotStatus::kOk) {
        ++r.count;
      } else if (st == seqlock::SlotStatus::kSkipped && run == Run::kFirst && r.count > 0) {
        break;
      } else {
        r.first = n + 1;
        r.count = 0;
      }
      if ((slot += slot_size_) == end) slot = data_;
    }
    return r;
  }

  // The slot that holds row n: the one place a row index becomes an address (modulo the private capacity).
  const std::byte* slot_at(std::uint64_t n) const noexcept { return data_ + (n % capacity_) * slot_size_; }
  seqlock::SlotStatus read_slot(std::uint64_t n, void* dst) const noexcept {
    return seqlock::read(slot_at(n), n, static_cast<std::byte*>(dst), row_size_);
  }
  bool copy_row(std::uint64_t n, void* dst) const noexcept { return read_slot(n, dst) == seqlock::SlotStatus::kOk; }

  HeaderWords words_;
  const std::byte* data_ = nullptr;
  std::uint64_t capacity_ = 0;
  std::uint64_t slot_size_ = 0;
  std::uint32_t row_size_ = 0;
  std::uint64_t base_ = 0;
  std::uint64_t cursor_ = 0;
  std::uint64_t race_until_ = 0;  // lapped again below this index: racing the producer (resume_after_lap)
  std::uint64_t known_head_ = 0;
  std::uint32_t idle_polls_ = 0;
  bool poll_head_ = false;
  bool corrupt_head_ = false;  // read_new() met a head outside [base_index, kIndexLimit]
};

}  // namespace cbuf
