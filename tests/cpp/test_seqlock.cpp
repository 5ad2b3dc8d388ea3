// Contract tests for the row version protocol (seqlock.hpp) on a slot in ordinary memory, in both copy forms,
// and a race that shows the re-check is what keeps torn rows out - in each form.
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "common.hpp"

using namespace cbuf;
using seqlock::SlotStatus;

TEST_CASE("seqlock: sequence values are a pure function of the index", "[seqlock]") {
  CHECK(seqlock::committed(0) == 2);
  CHECK(seqlock::writing(0) == 1);
  CHECK(seqlock::committed(41) == 84);
  CHECK(seqlock::classify(0, 0) == SlotStatus::kNotYet);  // never written
  CHECK(seqlock::classify(1, 0) == SlotStatus::kNotYet);  // row 0 in progress
  CHECK(seqlock::classify(2, 0) == SlotStatus::kOk);
  CHECK(seqlock::classify(seqlock::writing(4), 0) == SlotStatus::kOverwritten);  // row 4 taking the slot
  CHECK(seqlock::classify(seqlock::committed(4), 0) == SlotStatus::kOverwritten);
  CHECK(seqlock::classify(seqlock::committed(3), 7) == SlotStatus::kNotYet);  // older row still there
  // Format 1.1: a skipped row's value sits just above its committed value, so the 1.0 rule (d > 0: lost)
  // reads it as lost too.
  CHECK(seqlock::classify(seqlock::skipped(7), 7) == SlotStatus::kSkipped);
  CHECK(static_cast<std::int64_t>(seqlock::skipped(7) - seqlock::committed(7)) > 0);
  CHECK(seqlock::classify(seqlock::skipped(3), 7) == SlotStatus::kNotYet);  // an older skipped row
}

TEST_CASE("seqlock: classification is wrap-safe near 2^63 and 2^64", "[seqlock]") {
  for (std::uint64_t n : {(1ull << 32) - 1, 1ull << 32, (1ull << 63) - 2, (1ull << 63) - 1, 1ull << 63,
                          ~0ull - 5, ~0ull - 2}) {
    INFO("n = " << n);
    CHECK(seqlock::classify(seqlock::committed(n), n) == SlotStatus::kOk);
    CHECK(seqlock::classify(seqlock::writing(n), n) == SlotStatus::kNotYet);
    CHECK(seqlock::classify(seqlock::committed(n - 4), n) == SlotStatus::kNotYet);
    CHECK(seqlock::classify(seqlock::writing(n + 4), n) == SlotStatus::kOverwritten);
    CHECK(seqlock::classify(seqlock::committed(n + 4), n) == SlotStatus::kOverwritten);
  }
}

namespace {

using seqlock::CopyForm;
constexpr CopyForm kForms[] = {CopyForm::kFences, CopyForm::kAtomicWords};
const char* form_name(CopyForm f) { return f == CopyForm::kFences ? "fences" : "atomic words"; }
// ThreadSanitizer does not model fences (GCC refuses atomic_thread_fence under -fsanitize=thread): there, the
// fence form is not even compiled.
template <CopyForm F>
constexpr bool kCompiled = F == CopyForm::kAtomicWords || !detail::kThreadSanitizer;

template <CopyForm F>
void check_read_contract() {
  if constexpr (kCompiled<F>) {
    alignas(8) std::byte slot[8 + 24] = {};
    const char row[21] = "twenty-one bytes row";  // not a multiple of 8: exercises the tail word
    char out[21] = {};
    auto* o = reinterpret_cast<std::byte*>(out);
    CHECK(seqlock::read<F>(slot, 5, o, sizeof row) == SlotStatus::kNotYet);
    seqlock::begin_write(slot, 5);
    CHECK(seqlock::read<F>(slot, 5, o, sizeof row) == SlotStatus::kNotYet);
    seqlock::copy_in<F>(slot, reinterpret_cast<const std::byte*>(row), sizeof row);
    seqlock::end_write(slot, 5);
    REQUIRE(seqlock::read<F>(slot, 5, o, sizeof row) == SlotStatus::kOk);
    CHECK(std::memcmp(out, row, sizeof row) == 0);
    // The slot's padding stays zero: never stale bytes after the row.
    CHECK(slot[8 + 21] == std::byte{0});
    CHECK(seqlock::read<F>(slot, 4, o, sizeof row) == SlotStatus::kOverwritten);
    CHECK(seqlock::read<F>(slot, 6, o, sizeof row) == SlotStatus::kNotYet);
  }
}

// One protocol: a row written in one form reads back in the other.
template <CopyForm W, CopyForm R>
void check_cross_form() {
  if constexpr (kCompiled<W> && kCompiled<R>) {
    alignas(8) std::byte slot[8 + 4096] = {};
    std::vector<std::byte> row(4093), out(4093);
    for (std::size_t i = 0; i < row.size(); ++i) row[i] = static_cast<std::byte>(i * 7 + 1);
    seqlock::write_row<W>(slot, 9, row.data(), row.size());
    REQUIRE(seqlock::read<R>(slot, 9, out.data(), out.size()) == SlotStatus::kOk);
    CHECK(out == row);
  }
}

// A writer thread rewrites two 4 KiB slots as fast as it can (each row: its index in every word); a reader
// thread copies whichever row the sequence word says is committed. Returns the rows it accepted whose words
// disagree (torn), after `accepted` rows, the first torn one, or `budget`. With the re-check, none; without it, a torn copy is
// accepted as soon as the writer overtakes the copy - the torture tests would catch such a reader.
template <CopyForm F, bool kRecheck>
std::uint64_t torn_rows_accepted(std::uint64_t accepted, std::chrono::milliseconds budget) {
  if constexpr (kCompiled<F>) {
    constexpr std::size_t kWords = 512;
    constexpr std::size_t kSlot = 8 + kWords * 8;
    std::vector<std::uint64_t> storage(2 * kSlot / 8, 0);
    auto* data = reinterpret_cast<std::byte*>(storage.data());
    std::atomic<bool> stop{false};
    std::thread writer([&] {
      std::uint64_t row[kWords];
      for (std::uint64_t n = 0; !stop.load(std::memory_order_relaxed); ++n) {
        for (auto& w : row) w = n;
        seqlock::write_row<F>(data + (n % 2) * kSlot, n, reinterpret_cast<const std::byte*>(row), sizeof row);
      }
    });
    std::uint64_t torn = 0, ok = 0;
    std::uint64_t out[kWords];
    const auto deadline = std::chrono::steady_clock::now() + budget;
    while (ok < accepted && torn == 0 && std::chrono::steady_clock::now() < deadline) {
      const std::byte* slot = data + (ok % 2) * kSlot;
      const std::uint64_t s1 = seqlock::load_seq(slot, std::memory_order_acquire);
      if (s1 == 0 || s1 % 2 != 0) continue;
      const std::uint64_t n = s1 / 2 - 1;
      seqlock::copy_out<F>(reinterpret_cast<std::byte*>(out), slot, sizeof out);
      if (kRecheck && seqlock::load_seq(slot, std::memory_order_relaxed) != s1) continue;
      ++ok;
      for (const auto w : out) {
        if (w != n) {
          ++torn;
          break;
        }
      }
    }
    stop = true;
    writer.join();
    return torn;
  } else {
    return 0;
  }
}

}  // namespace

TEST_CASE("seqlock: read returns the row only when committed and unchanged, in both copy forms", "[seqlock]") {
  check_read_contract<CopyForm::kFences>();
  check_read_contract<CopyForm::kAtomicWords>();
}

TEST_CASE("seqlock: the two copy forms are one protocol (each reads what the other wrote)", "[seqlock]") {
  check_cross_form<CopyForm::kFences, CopyForm::kAtomicWords>();
  check_cross_form<CopyForm::kAtomicWords, CopyForm::kFences>();
  check_cross_form<CopyForm::kFences, CopyForm::kFences>();
  check_cross_form<CopyForm::kAtomicWords, CopyForm::kAtomicWords>();
}

TEST_CASE("seqlock: the re-check keeps torn rows out, and a reader without it is caught, in each copy form",
          "[seqlock][torture]") {
  if (std::thread::hardware_concurrency() < 2) CBUF_SKIP("needs two CPUs for the writer to overtake a copy");
  using std::chrono::milliseconds;
  for (const CopyForm f : kForms) {
    INFO("copy form: " << form_name(f));
    if (f == CopyForm::kFences && detail::kThreadSanitizer) {
      WARN("the fence form is not run under ThreadSanitizer, which does not model fences (seqlock.hpp)");
      continue;
    }
    const bool fences = f == CopyForm::kFences;
    const std::uint64_t with = fences ? torn_rows_accepted<CopyForm::kFences, true>(50000, milliseconds(1500))
                                      : torn_rows_accepted<CopyForm::kAtomicWords, true>(50000, milliseconds(1500));
    CHECK(with == 0);
    const std::uint64_t without = fences
                                      ? torn_rows_accepted<CopyForm::kFences, false>(200000, milliseconds(10000))
                                      : torn_rows_accepted<CopyForm::kAtomicWords, false>(200000, milliseconds(10000));
    CHECK(without > 0);
  }
}

TEST_CASE("seqlock: the runtime's copy form is the fence form, except where ThreadSanitizer checks the code",
          "[seqlock]") {
#if defined(CBUF_SEQLOCK_ATOMIC_WORDS) && CBUF_SEQLOCK_ATOMIC_WORDS
  CHECK(seqlock::kCopyForm == CopyForm::kAtomicWords);
#else
  CHECK(seqlock::kCopyForm == (detail::kThreadSanitizer ? CopyForm::kAtomicWords : CopyForm::kFences));
#endif
}
