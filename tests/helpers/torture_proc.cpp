// Helper process for the multi-process torture test (tests/cpp/test_torture.cpp).
//   cbuf_torture_proc producer PATH ROWS CAPACITY   create, print "ready", wait for a byte on stdin, write
//                                                   ROWS checksummed rows, close, print "done"
//   cbuf_torture_proc consumer PATH ROWS SLOW       attach (start at index 0), print "attached", read until
//                                                   row ROWS-1 has been received or reported lost, print
//                                                   "received=R lost=L errors=E"
// SLOW=1 makes the consumer sleep now and then, so it is lapped.
//   cbuf_torture_proc follow PATH EPOCHS 0          a following consumer started before any producer: prints
//                                                   "epoch E" when it reaches epoch E, and after the last epoch
//                                                   "E received=R lost=L errors=X restarts=N" per epoch
//                                                   (rows of epoch E are CheckedRow::make(0..), base index 0)
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"

using cbuf_test::CheckedRow;

namespace {

int produce(const std::string& path, std::uint64_t rows, std::uint64_t capacity) {
  cbuf::Producer<CheckedRow> p(cbuf::ProducerOptions().name(path).capacity(capacity));
  std::printf("ready\n");
  std::fflush(stdout);
  char go;
  if (::read(0, &go, 1) != 1) return 2;
  for (std::uint64_t i = 0; i < rows; ++i) {
    if (i % 3 == 0) {
      CheckedRow& r = p.claim();  // exercise the zero-copy path too
      r = CheckedRow::make(i);
      p.commit();
    } else {
      p.write(CheckedRow::make(i));
    }
  }
  p.close();
  std::printf("done\n");
  return 0;
}

int consume(const std::string& path, std::uint64_t rows, bool slow) {
  cbuf::Consumer<CheckedRow> c(path, cbuf::ConsumerOptions().start_index(0));
  std::printf("attached\n");
  std::fflush(stdout);
  cbuf_test::Ledger ledger;
  CheckedRow buf[256];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  std::uint64_t polls = 0;
  while (ledger.expected < rows) {
    const cbuf::Batch b = c.read_new(buf);
    ledger.account(b, buf);
    if (b.count == 0) {
      std::this_thread::yield();
      if (std::chrono::steady_clock::now() > deadline) {
        std::printf("timeout expected=%llu\n", static_cast<unsigned long long>(ledger.expected));
        return 3;
      }
    }
    if (slow && ++polls % 64 == 0) cbuf_test::wait_until_lapped(c.raw(), rows);
  }
  std::printf("received=%llu lost=%llu errors=%llu\n", static_cast<unsigned long long>(ledger.received),
              static_cast<unsigned long long>(ledger.lost), static_cast<unsigned long long>(ledger.errors));
  return 0;
}

int follow(const std::string& path, std::uint64_t epochs) {
  cbuf::Consumer<CheckedRow> c(path, cbuf::ConsumerOptions().follow(true).attach_timeout(std::chrono::seconds(60)));
  std::printf("epoch %llu\n", static_cast<unsigned long long>(c.raw().epoch()));
  std::fflush(stdout);
  struct Epoch {
    std::uint64_t epoch = 0;
    cbuf_test::Ledger ledger;
    std::uint64_t restarts_seen = 0;
  };
  std::vector<Epoch> done;
  Epoch cur{c.raw().epoch(), {}, 0};
  std::uint64_t bad_restarts = 0;
  CheckedRow buf[256];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  for (;;) {
    const cbuf::Batch b = c.read_new(buf);
    if (b.restart) {
      // Reported once, exactly where the old epoch's rows end.
      if (b.restart.old_epoch != cur.epoch || b.restart.old_end != cur.ledger.expected) ++bad_restarts;
      done.push_back(cur);
      cur = Epoch{b.restart.new_epoch, {}, 1};
      cur.ledger.expected = b.restart.new_start;
      std::printf("epoch %llu\n", static_cast<unsigned long long>(cur.epoch));
      std::fflush(stdout);
      continue;
    }
    cur.ledger.account(b, buf);
    if (b.count == 0 && !b.lost) {
      if (cur.epoch >= epochs && c.state() == cbuf::ProducerState::kClosed && c.cursor() >= c.head()) break;
      c.wait(std::chrono::milliseconds(50));
      if (std::chrono::steady_clock::now() > deadline) return 3;
    }
  }
  done.push_back(cur);
  for (const Epoch& e : done)
    std::printf("%llu received=%llu lost=%llu errors=%llu restarts=%llu\n", static_cast<unsigned long long>(e.epoch),
                static_cast<unsigned long long>(e.ledger.received), static_cast<unsigned long long>(e.ledger.lost),
                static_cast<unsigned long long>(e.ledger.errors + bad_restarts),
                static_cast<unsigned long long>(e.restarts_seen));
  std::printf("end\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s producer|consumer PATH ROWS CAPACITY|SLOW\n", argv[0]);
    return 2;
  }
  const std::string role = argv[1];
  const std::uint64_t rows = std::strtoull(argv[3], nullptr, 10);
  const std::uint64_t extra = std::strtoull(argv[4], nullptr, 10);
  try {
    if (role == "producer") return produce(argv[2], rows, extra);
    if (role == "consumer") return consume(argv[2], rows, extra != 0);
    if (role == "follow") return follow(argv[2], rows);
  } catch (const cbuf::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 2;
}
