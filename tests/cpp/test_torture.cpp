// Torture: one producer, three consumers (one deliberately slow, so it is lapped), checksummed rows.
// Zero torn rows, indices strictly increasing, and received + reported-lost == produced, exactly.
// Multi-thread (checked by ThreadSanitizer in the tsan build) and multi-process (fork/exec).
#include <cstdio>
#include <sstream>
#include <thread>
#include <vector>

#include "common.hpp"

using namespace cbuf;
using cbuf_test::CheckedRow;
using cbuf_test::Child;
using cbuf_test::Ledger;
using cbuf_test::TempDir;

namespace {

constexpr std::uint64_t kRows = CBUF_TORTURE_ROWS;
constexpr std::uint64_t kCapacity = 4096;

Ledger consume(const std::string& path, std::uint64_t rows, bool slow, Poll poll = Poll::kSlot) {
  Consumer<CheckedRow> c(path, ConsumerOptions().start_index(0).poll(poll));
  Ledger ledger;
  CheckedRow buf[256];
  std::uint64_t polls = 0;
  while (ledger.expected < rows) {
    // Mix the three read paths: batches, single steps and batches of one.
    Batch b;
    if (polls % 3 == 1) {
      auto n = c.try_next();
      b = Batch{n.index, n.row ? 1u : 0u, n.lost, n.restart};
      if (n.row) buf[0] = *n.row;
    } else {
      b = c.read_new(std::span<CheckedRow>(buf, polls % 3 == 0 ? 256 : 1));
    }
    ledger.account(b, buf);
    if (b.count == 0) std::this_thread::yield();
    if (slow && ++polls % 64 == 0) cbuf_test::wait_until_lapped(c.raw(), rows);
    else if (!slow) ++polls;
  }
  return ledger;
}


}  // namespace

TEST_CASE("torture, threads: 1 producer, 3 consumers (1 slow), checksummed rows", "[torture]") {
  TempDir d;
  Producer<CheckedRow> p(ProducerOptions().dir(d.path()).name("t").capacity(kCapacity));
  Ledger results[3];
  std::vector<std::thread> readers;
  for (int k = 0; k < 3; ++k)
    readers.emplace_back([&, k] {
      results[k] = consume(p.path(), kRows, /*slow=*/k == 2, k == 1 ? Poll::kHead : Poll::kSlot);
    });
  for (std::uint64_t i = 0; i < kRows; ++i) {
    if (i % 3 == 0) {
      p.claim() = CheckedRow::make(i);
      p.commit();
    } else {
      p.write(CheckedRow::make(i));
    }
  }
  for (auto& t : readers) t.join();
  for (int k = 0; k < 3; ++k) {
    INFO("consumer " << k << ": received " << results[k].received << ", lost " << results[k].lost);
    CHECK(results[k].errors == 0);
    CHECK(results[k].received + results[k].lost == kRows);
    CHECK(results[k].expected == kRows);
  }
  CHECK(results[2].lost > 0);  // the slow one really was lapped, so loss accounting was exercised
}

TEST_CASE("torture, threads: 4 KiB rows, 1 producer, 2 consumers (1 slow), checksummed rows", "[torture]") {
  const std::uint64_t rows = kRows / 50;
  TempDir d;
  Producer<cbuf_test::BigRow> p(ProducerOptions().dir(d.path()).name("big").capacity(64));
  Ledger results[2];
  std::vector<std::thread> readers;
  for (int k = 0; k < 2; ++k)
    readers.emplace_back([&, k] {
      Consumer<cbuf_test::BigRow> c(p.path(), ConsumerOptions().start_index(0));
      std::vector<cbuf_test::BigRow> buf(16);
      std::uint64_t polls = 0;
      while (results[k].expected < rows) {
        const Batch b = c.read_new(std::span<cbuf_test::BigRow>(buf));
        results[k].account(b, buf.data());
        if (b.count == 0) std::this_thread::yield();
        if (k == 1 && ++polls % 8 == 0) cbuf_test::wait_until_lapped(c.raw(), rows);
      }
    });
  for (std::uint64_t i = 0; i < rows; ++i) {
    if (i % 3 == 0) {
      p.claim() = cbuf_test::BigRow::make(i);
      p.commit();
    } else {
      p.write(cbuf_test::BigRow::make(i));
    }
  }
  for (auto& t : readers) t.join();
  for (int k = 0; k < 2; ++k) {
    INFO("consumer " << k << ": received " << results[k].received << ", lost " << results[k].lost);
    CHECK(results[k].errors == 0);
    CHECK(results[k].received + results[k].lost == rows);
  }
  CHECK(results[1].lost > 0);
}

TEST_CASE("torture, processes: 1 producer, 3 consumers (1 slow), checksummed rows", "[torture]") {
  TempDir d;
  const std::string path = d / "tp";
  const std::string rows = std::to_string(kRows);
  Child producer({CBUF_TORTURE_PROC, "producer", path, rows, std::to_string(kCapacity)});
  REQUIRE(producer.line() == "ready\n");
  std::vector<std::unique_ptr<Child>> consumers;
  for (int k = 0; k < 3; ++k) {
    consumers.push_back(std::make_unique<Child>(
        std::vector<std::string>{CBUF_TORTURE_PROC, "consumer", path, rows, k == 2 ? "1" : "0"}));
    REQUIRE(consumers.back()->line() == "attached\n");
  }
  REQUIRE(::write(producer.in, "g", 1) == 1);
  CHECK(producer.line() == "done\n");
  CHECK(producer.wait() == 0);
  std::uint64_t slow_lost = 0;
  for (int k = 0; k < 3; ++k) {
    const std::string result = consumers[k]->line();
    INFO("consumer " << k << ": " << result);
    CHECK(consumers[k]->wait() == 0);
    unsigned long long received = 0, lost = 0, errors = 1;
    REQUIRE(std::sscanf(result.c_str(), "received=%llu lost=%llu errors=%llu", &received, &lost, &errors) == 3);
    CHECK(errors == 0);
    CHECK(received + lost == kRows);
    if (k == 2) slow_lost = lost;
  }
  CHECK(slow_lost > 0);
  CHECK(RawConsumer(path).state() == ProducerState::kClosed);
}
