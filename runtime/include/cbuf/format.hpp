// cbuf/format.hpp - the on-disk header of format v1, as a POD with static_assert'ed offsets.
//
// docs/format.md is the normative description; this file mirrors it field for field. All integers are
// little-endian (the runtime refuses to build on a big-endian target). A buffer file is:
//
//   [0, 512)                       Header (this struct)
//   [schema_offset, +schema_size)  the schema JSON, UTF-8, verbatim, not NUL-terminated
//   [data_offset, +capacity*slot_size)  the slots; data_offset is a multiple of page_size
//
// Immutable fields are written before the magic is published (release) and never change afterwards, so a
// reader that has seen the magic (acquire) may read them with plain loads. The words that change after
// publication - magic, state, closed_ns, head, wait_word, waiters - are only ever accessed atomically, through
// HeaderWords (below): the one place that says how each is reached.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

#include "cbuf/error.hpp"

namespace cbuf {

static_assert(std::endian::native == std::endian::little, "the cbuf format is little-endian; big-endian hosts are not supported");

inline constexpr std::uint16_t kFormatMajor = 1;
inline constexpr std::uint16_t kFormatMinor = 1;  // 1.1: skipped rows (seqlock::skipped)
// Bumped whenever generated code must be regenerated for this runtime (generated headers static_assert it).
inline constexpr std::uint32_t kAbiVersion = 1;

// "CBUFRING" read as a little-endian u64; stored last, with release ordering, to publish the header.
inline constexpr std::uint64_t kMagic = 0x474E495246554243ull;

inline constexpr std::uint32_t kHeaderSize = 512;          // bytes of the fixed header in v1
inline constexpr std::uint64_t kMaxSchemaSize = 1u << 20;  // 1 MiB: a larger schema is refused as corrupt
inline constexpr std::uint32_t kMaxRowSize = 1u << 24;     // 16 MiB per row
inline constexpr std::uint64_t kMaxCapacity = 1ull << 40;  // rows
inline constexpr std::uint64_t kSeqSize = 8;               // the sequence word at the start of each slot
// Row indices are below kIndexLimit, and the head never passes it (docs/format.md section 1). Below it the
// sequence values of a row (2n+1, 2n+2, 2n+3; seqlock.hpp) stay under 2^64 - 1 and never wrap to 0, "never
// written"; and the value that index kIndexLimit itself would commit is held by no slot, so a cursor that has
// read the last row finds "not yet" there. A producer refuses a base_index or skip() beyond it and write()
// stops there with Errc::kIndexLimit; a reader treats a head beyond it as a corrupt header.
inline constexpr std::uint64_t kIndexLimit = (1ull << 63) - 2;

// Producer state word (Header::state). "dead" is not stored: it is derived from the producer identity.
enum class State : std::uint32_t { kCreating = 0, kLive = 1, kClosed = 2, kReplaced = 3 };

// Header::mem_flags bits: the memory settings actually in use, for consumers and tools.
inline constexpr std::uint32_t kMemMlocked = 1u << 0;
inline constexpr std::uint32_t kMemHugetlbfs = 1u << 1;
inline constexpr std::uint32_t kMemThpAdvised = 1u << 2;
inline constexpr std::uint32_t kMemPrefaulted = 1u << 3;

struct Header {
  // --- cache line 0: geometry (immutable once published)
  std::uint64_t magic;           // kMagic, written last (release)
  std::uint16_t version_major;   // kFormatMajor
  std::uint16_t version_minor;   // kFormatMinor
  std::uint32_t header_size;     // kHeaderSize in v1; readers accept larger values (appended fields)
  std::uint64_t file_size;       // total bytes the producer reserved
  std::uint64_t data_offset;     // first slot; multiple of page_size
  std::uint64_t capacity;        // slots (rows kept), >= 1
  std::uint32_t slot_size;       // bytes per slot: slot_size_for(row_size)
  std::uint32_t row_size;        // payload bytes per row
  std::uint64_t schema_offset;   // schema JSON position
  std::uint64_t schema_size;     // schema JSON length in bytes
  // --- cache line 1: identity (immutable once published)
  std::uint64_t schema_fingerprint;  // 64-bit layout hash, see docs/format.md
  std::uint64_t base_index;          // index of the first row this producer writes; head starts here
  std::uint64_t page_size;           // page size backing the data area (4096, or a huge page size)
  std::uint32_t mem_flags;           // kMem* bits actually in effect
  std::uint32_t flags;               // reserved, 0 in v1; readers ignore unknown bits
  std::uint32_t producer_pid;        // pid of the creating process (in the creator's pid namespace)
  std::uint32_t reserved0;
  std::uint64_t producer_start_time; // that process's start time, clock ticks since boot (/proc/PID/stat #22)
  std::uint64_t epoch;               // 1 for a new name, previous epoch + 1 when replacing a buffer
  std::uint64_t created_ns;          // CLOCK_REALTIME at creation, nanoseconds since the Unix epoch
  // --- cache line 2: lifecycle (mutable, rarely written)
  std::uint32_t state;               // State, atomic
  std::uint32_t reserved1;
  std::uint64_t closed_ns;           // CLOCK_REALTIME when closed, written before state (release)
  std::uint8_t reserved2[112];       // zero; pads to the head's lines
  // --- cache lines 4-5: the head, alone on its own 128 bytes (adjacent-line prefetch pairs lines)
  std::uint64_t head;                // committed rows (next index to write), atomic, monotonic
  std::uint8_t pad_head[120];
  // --- cache lines 6-7: blocking wait support (mutable, atomic)
  std::uint32_t wait_word;           // futex word: bumped by the producer when it wakes waiters
  std::uint32_t waiters;             // nonzero: some consumer may be asleep on wait_word (the producer clears it)
  std::uint8_t pad_wait[120];
};

static_assert(std::is_standard_layout_v<Header> && std::is_trivially_copyable_v<Header>,
              "the header is a plain struct laid over mapped bytes");
static_assert(sizeof(Header) == kHeaderSize, "the v1 header is exactly 512 bytes");
static_assert(offsetof(Header, magic) == 0 && offsetof(Header, version_major) == 8 &&
              offsetof(Header, header_size) == 12 && offsetof(Header, file_size) == 16 &&
              offsetof(Header, data_offset) == 24 && offsetof(Header, capacity) == 32 &&
              offsetof(Header, slot_size) == 40 && offsetof(Header, row_size) == 44 &&
              offsetof(Header, schema_offset) == 48 && offsetof(Header, schema_size) == 56,
              "geometry fields at the offsets docs/format.md gives");
static_assert(offsetof(Header, schema_fingerprint) == 64 && offsetof(Header, base_index) == 72 &&
              offsetof(Header, page_size) == 80 && offsetof(Header, mem_flags) == 88 &&
              offsetof(Header, producer_pid) == 96 && offsetof(Header, producer_start_time) == 104 &&
              offsetof(Header, epoch) == 112 && offsetof(Header, created_ns) == 120,
              "identity fields at the offsets docs/format.md gives");
static_assert(offsetof(Header, state) == 128 && offsetof(Header, closed_ns) == 136,
              "lifecycle fields at the offsets docs/format.md gives");
static_assert(offsetof(Header, head) == 256 && offsetof(Header, head) % 128 == 0,
              "head starts a 128-byte block of its own, so no other written word shares its cache lines");
static_assert(offsetof(Header, wait_word) == 384 && offsetof(Header, waiters) == 388,
              "wait words sit on their own lines, away from the head");

// The header's words that change after publication, each as an atomic reference: ring.hpp (head), wait.hpp
// (wait_word, waiters), producer.hpp and consumer.hpp (magic, state, closed_ns) reach them only through here.
// A load never writes, so building the reference over a read-only mapping is sound (64-bit atomic loads are
// plain loads on the targets cbuf supports); the orderings are chosen at each use, next to the reason.
class HeaderWords {
 public:
  HeaderWords() = default;
  explicit HeaderWords(const Header* h) noexcept : h_(const_cast<Header*>(h)) {}
  std::atomic_ref<std::uint64_t> magic() const noexcept { return std::atomic_ref<std::uint64_t>(h_->magic); }
  std::atomic_ref<std::uint32_t> state() const noexcept { return std::atomic_ref<std::uint32_t>(h_->state); }
  std::atomic_ref<std::uint64_t> closed_ns() const noexcept { return std::atomic_ref<std::uint64_t>(h_->closed_ns); }
  std::atomic_ref<std::uint64_t> head() const noexcept { return std::atomic_ref<std::uint64_t>(h_->head); }
  std::atomic_ref<std::uint32_t> wait_word() const noexcept { return std::atomic_ref<std::uint32_t>(h_->wait_word); }
  std::atomic_ref<std::uint32_t> waiters() const noexcept { return std::atomic_ref<std::uint32_t>(h_->waiters); }
  // The futex address (the same word as wait_word()).
  std::uint32_t* futex_word() const noexcept { return &h_->wait_word; }

 private:
  Header* h_ = nullptr;
};
static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free && std::atomic_ref<std::uint32_t>::is_always_lock_free,
              "the header's words cross processes: they must be lock-free atomics");

// The validated geometry of a buffer: every number here has been bounds-checked against the file size.
struct Layout {
  std::uint64_t file_size = 0;
  std::uint64_t data_offset = 0;
  std::uint64_t capacity = 0;
  std::uint32_t slot_size = 0;
  std::uint32_t row_size = 0;
  std::uint64_t schema_offset = 0;
  std::uint64_t schema_size = 0;
  std::uint64_t page_size = 0;
};

namespace detail {

constexpr bool add_overflows(std::uint64_t a, std::uint64_t b, std::uint64_t* out) noexcept {
  return __builtin_add_overflow(a, b, out);
}
constexpr bool mul_overflows(std::uint64_t a, std::uint64_t b, std::uint64_t* out) noexcept {
  return __builtin_mul_overflow(a, b, out);
}
constexpr std::uint64_t round_up(std::uint64_t v, std::uint64_t to) noexcept { return (v + to - 1) / to * to; }

}  // namespace detail

// Slot size the producer uses for a row of `row_size` bytes: the sequence word, the row, padded to 8.
constexpr std::uint32_t slot_size_for(std::uint32_t row_size) noexcept {
  return static_cast<std::uint32_t>(detail::round_up(kSeqSize + row_size, 8));
}

// The producer's layout for a new buffer. Throws kInvalidArgument naming the field at fault.
inline Layout plan_layout(const std::string& path, std::uint64_t capacity, std::uint64_t row_size,
                          std::uint64_t schema_size, std::uint64_t page_size) {
  if (capacity == 0 || capacity > kMaxCapacity)
    throw Error(Errc::kInvalidArgument, path,
                "capacity " + std::to_string(capacity) + " is out of range; use 1.." + std::to_string(kMaxCapacity) + " rows");
  if (row_size == 0 || row_size > kMaxRowSize)
    throw Error(Errc::kInvalidArgument, path,
                "row size " + std::to_string(row_size) + " is out of range; use 1.." + std::to_string(kMaxRowSize) + " bytes");
  if (schema_size > kMaxSchemaSize)
    throw Error(Errc::kInvalidArgument, path,
                "schema JSON is " + std::to_string(schema_size) + " bytes; the limit is " + std::to_string(kMaxSchemaSize));
  Layout l;
  l.capacity = capacity;
  l.row_size = static_cast<std::uint32_t>(row_size);
  l.slot_size = slot_size_for(l.row_size);
  l.schema_offset = kHeaderSize;
  l.schema_size = schema_size;
  l.page_size = page_size;
  l.data_offset = detail::round_up(kHeaderSize + schema_size, page_size);
  std::uint64_t data_bytes = 0;
  if (detail::mul_overflows(capacity, l.slot_size, &data_bytes) ||
      detail::add_overflows(l.data_offset, detail::round_up(data_bytes, page_size), &l.file_size))
    throw Error(Errc::kInvalidArgument, path, "capacity x slot size overflows 64 bits; use a smaller capacity");
  return l;
}

// Checks a header read from a file of `file_size` bytes. Requires the magic to have been observed already.
// Every offset and size is checked with overflow-safe arithmetic before anything beyond the header is touched.
inline Layout validate_header(const Header& h, std::uint64_t file_size, const std::string& path) {
  auto corrupt = [&](const std::string& what) {
    return Error(Errc::kCorruptHeader, path, what + "; the file is damaged or not written by cbuf - recreate the buffer");
  };
  if (h.version_major != kFormatMajor)
    throw Error(Errc::kUnsupportedVersion, path,
                "format version " + std::to_string(h.version_major) + "." + std::to_string(h.version_minor) +
                    " is not readable by this runtime (reads " + std::to_string(kFormatMajor) +
                    ".x); upgrade cbuf on the reading side or recreate the buffer");
  if (h.header_size < kHeaderSize || h.header_size > file_size)
    throw corrupt("header_size " + std::to_string(h.header_size) + " is outside [" + std::to_string(kHeaderSize) +
                  ", file size " + std::to_string(file_size) + "]");
  if (h.file_size > file_size)
    throw Error(Errc::kTruncated, path,
                "file is " + std::to_string(file_size) + " bytes but its header says file_size " +
                    std::to_string(h.file_size) + "; it was truncated - recreate the buffer");
  Layout l;
  l.file_size = h.file_size;
  l.data_offset = h.data_offset;
  l.capacity = h.capacity;
  l.slot_size = h.slot_size;
  l.row_size = h.row_size;
  l.schema_offset = h.schema_offset;
  l.schema_size = h.schema_size;
  l.page_size = h.page_size;
  if (l.capacity == 0 || l.capacity > kMaxCapacity) throw corrupt("capacity " + std::to_string(l.capacity) + " is out of range");
  if (l.row_size == 0 || l.row_size > kMaxRowSize) throw corrupt("row_size " + std::to_string(l.row_size) + " is out of range");
  if (l.slot_size != slot_size_for(l.row_size))  // the one slot size every writer uses (docs/format.md section 2)
    throw corrupt("slot_size " + std::to_string(l.slot_size) + " is not " + std::to_string(slot_size_for(l.row_size)) +
                  " (8 + row_size " + std::to_string(l.row_size) + ", rounded up to 8)");
  if (h.base_index > kIndexLimit)
    throw corrupt("base_index " + std::to_string(h.base_index) + " is beyond the largest row index " +
                  std::to_string(kIndexLimit - 1));
  if (l.page_size < 4096 || !std::has_single_bit(l.page_size) || l.data_offset % l.page_size != 0)
    throw corrupt("data_offset " + std::to_string(l.data_offset) + " is not a multiple of page_size " + std::to_string(l.page_size));
  std::uint64_t data_bytes = 0, data_end = 0, schema_end = 0;
  if (detail::mul_overflows(l.capacity, l.slot_size, &data_bytes) ||
      detail::add_overflows(l.data_offset, data_bytes, &data_end) || data_end > l.file_size)
    throw corrupt("capacity x slot_size from data_offset runs past file_size " + std::to_string(l.file_size));
  if (l.schema_size > kMaxSchemaSize) throw corrupt("schema_size " + std::to_string(l.schema_size) + " exceeds the 1 MiB limit");
  if (l.schema_offset < h.header_size || detail::add_overflows(l.schema_offset, l.schema_size, &schema_end) ||
      schema_end > l.data_offset)
    throw corrupt("schema [" + std::to_string(l.schema_offset) + ", +" + std::to_string(l.schema_size) +
                  ") is not between the header and data_offset");
  return l;
}

}  // namespace cbuf
