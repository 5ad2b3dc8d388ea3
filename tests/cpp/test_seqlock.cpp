// Contract tests for the row version protocol (seqlock.hpp) on a slot in ordinary memory.
#include <cstring>

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

TEST_CASE("seqlock: read returns the row only when committed and unchanged", "[seqlock]") {
  alignas(8) std::byte slot[8 + 24] = {};
  const char row[21] = "twenty-one bytes row";  // not a multiple of 8: exercises the tail word
  char out[21] = {};
  CHECK(seqlock::read(slot, 5, reinterpret_cast<std::byte*>(out), sizeof row) == SlotStatus::kNotYet);
  seqlock::begin_write(slot, 5);
  CHECK(seqlock::read(slot, 5, reinterpret_cast<std::byte*>(out), sizeof row) == SlotStatus::kNotYet);
  seqlock::store_payload(slot + seqlock::kSeqOffset, reinterpret_cast<const std::byte*>(row), sizeof row);
  seqlock::end_write(slot, 5);
  REQUIRE(seqlock::read(slot, 5, reinterpret_cast<std::byte*>(out), sizeof row) == SlotStatus::kOk);
  CHECK(std::memcmp(out, row, sizeof row) == 0);
  // The tail of the last word is zero padding, never stale bytes.
  CHECK(slot[8 + 21] == std::byte{0});
  CHECK(seqlock::read(slot, 4, reinterpret_cast<std::byte*>(out), sizeof row) == SlotStatus::kOverwritten);
  CHECK(seqlock::read(slot, 6, reinterpret_cast<std::byte*>(out), sizeof row) == SlotStatus::kNotYet);
}
