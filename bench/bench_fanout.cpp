// Fan-out: what N reader processes cost the producer, beside what the same memory traffic costs without the
// ring (issue 21). The producer thread (CPU 0) writes rows as fast as it can for a fixed time; N forked
// processes (all on CPU 1) either read the ring - read_new in batches of 1024, yielding when empty, polling the
// next slot (Poll::kSlot), the head (Poll::kHead), or asleep in wait() (kBlock) - or do what the control for
// that ring is. 64 MiB ring (memory-bound): copy a private 64 MiB buffer in a loop, the same kind of memory
// traffic without the ring. 1 MiB ring (cache-resident, where rows must cross between the caches anyway):
// follow the head of the same ring and memcpy the rows out with no validation at all (the cross-core
// streaming floor). Reader and control runs alternate within each round; the figure is the producer's rows/s
// with N readers divided by its rows/s with N controls.
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include <cbuf/cbuf.hpp>

#include "bench_common.hpp"

namespace bench {
namespace {

using Clock = std::chrono::steady_clock;

enum class Mode { kSlot, kHead, kBlock, kCopier, kFollower };
const char* mode_name(Mode m) {
  switch (m) {
    case Mode::kSlot: return "slot polling";
    case Mode::kHead: return "head polling";
    case Mode::kBlock: return "blocking";
    case Mode::kCopier: return "copier";
    case Mode::kFollower: return "unvalidated follower";
  }
  return "?";
}

// A page shared with the children: the stop flag and how many have started.
struct Control {
  std::atomic<int> started{0};
  std::atomic<bool> stop{false};
};

[[noreturn]] void child(Mode mode, const std::string& path, Control* ctl, std::size_t row_bytes) {
  pin(g_cpu_consumer);
  if (mode == Mode::kCopier) {
    std::vector<char> a(32u << 20, 1), b(32u << 20);
    ctl->started.fetch_add(1);
    while (!ctl->stop.load(std::memory_order_relaxed)) std::memcpy(b.data(), a.data(), a.size());
    _exit(b[12345] == 1 ? 0 : 1);
  }
  try {
    cbuf::ConsumerOptions o;
    o.start(cbuf::Start::kEnd).poll(mode == Mode::kHead ? cbuf::Poll::kHead : cbuf::Poll::kSlot).prefault(true);
    cbuf::RawConsumer c(path, o);
    std::vector<std::byte> buf(1024 * row_bytes);
    ctl->started.fetch_add(1);
    if (mode == Mode::kFollower) {  // the head and memcpy, nothing else
      std::uint64_t cursor = c.head();
      while (!ctl->stop.load(std::memory_order_relaxed)) {
        const std::uint64_t h = c.head();
        if (h - cursor > c.capacity()) cursor = h - c.capacity();
        const std::uint64_t n = std::min<std::uint64_t>(h - cursor, 1024);
        for (std::uint64_t k = 0; k < n; ++k)
          std::memcpy(buf.data() + k * row_bytes, c.raw_row_unvalidated(cursor + k).data(), row_bytes);
        cursor += n;
        if (n == 0) sched_yield();
      }
      _exit(0);
    }
    while (!ctl->stop.load(std::memory_order_relaxed)) {
      if (mode == Mode::kBlock) c.wait(std::chrono::milliseconds(10), cbuf::Idle::kBlock);
      if (c.read_new(buf.data(), 1024).count == 0 && mode != Mode::kBlock) sched_yield();
    }
  } catch (const cbuf::Error& e) {
    std::fprintf(stderr, "fan-out reader: %s\n", e.what());
    _exit(1);
  }
  _exit(0);
}

// Producer rows/s over `seconds` with n children of `mode`.
double run(Mode mode, int n, const std::string& dir, std::size_t row_bytes, std::uint64_t ring_bytes,
           double seconds) {
  cbuf::RawProducer p(cbuf::ProducerOptions().dir(dir).name("cbuf-bench-fanout").on_close(cbuf::OnClose::kUnlink)
                          .capacity(ring_bytes / cbuf::slot_size_for(static_cast<std::uint32_t>(row_bytes))).prefault(true),
                      static_cast<std::uint32_t>(row_bytes));
  auto* ctl = static_cast<Control*>(::mmap(nullptr, sizeof(Control), PROT_READ | PROT_WRITE,
                                           MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  new (ctl) Control();
  std::vector<pid_t> kids;
  for (int k = 0; k < n; ++k) {
    const pid_t pid = ::fork();
    if (pid == 0) child(mode, p.path(), ctl, row_bytes);
    kids.push_back(pid);
  }
  while (ctl->started.load() < n) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  pin(g_cpu_producer);
  std::vector<std::byte> row(row_bytes, std::byte{0x5a});
  std::uint64_t rows = 0;
  const auto t0 = Clock::now();
  const auto end = t0 + std::chrono::duration<double>(seconds);
  while (Clock::now() < end) {
    for (int i = 0; i < 1024; ++i) p.write(row.data());
    rows += 1024;
  }
  const double rate = static_cast<double>(rows) / std::chrono::duration<double>(Clock::now() - t0).count();
  ctl->stop = true;
  for (const pid_t k : kids) ::waitpid(k, nullptr, 0);
  ::munmap(ctl, sizeof(Control));
  return rate;
}

}  // namespace

void bench_fanout(const std::string& dir, int rounds, bool quick) {
  rounds = std::min(rounds, 3);  // 46 configurations x 2 runs each: keep the section to a few minutes
  const double seconds = quick ? 0.2 : 0.5;
  const std::vector<int> counts = quick ? std::vector<int>{0, 1, 4, 16} : std::vector<int>{0, 1, 2, 4, 8, 16};
  std::printf("\n== Fan-out: producer rows/s with N reader processes on the other CPU, against N controls: on the "
              "64 MiB ring processes copying 64 MiB of private memory, on the 1 MiB ring unvalidated followers of "
              "the head (ratio = readers / controls)\n");
  std::printf("%-6s %-6s %-13s %3s %14s %14s  %s\n", "row", "ring", "readers", "N", "with readers", "with controls",
              "ratio median [min-max]");
  for (const std::size_t bytes : {std::size_t{64}, std::size_t{1024}})
    for (const std::uint64_t ring : {1ull << 20, 64ull << 20})
      for (const Mode mode : {Mode::kSlot, Mode::kHead, Mode::kBlock})
        for (const int n : counts) {
          if (n == 0 && mode != Mode::kSlot) continue;  // no reader: the same run whatever the mode
          const Mode control_mode = ring == (1ull << 20) ? Mode::kFollower : Mode::kCopier;
          std::vector<double> with, control, ratios;
          for (int r = 0; r < rounds; ++r) {
            with.push_back(run(mode, n, dir, bytes, ring, seconds));
            control.push_back(run(control_mode, n, dir, bytes, ring, seconds));
            ratios.push_back(with.back() / control.back());
          }
          const Stat w = summarize(with), c = summarize(control), q = summarize(ratios);
          const char* ring_name = ring == (1ull << 20) ? "1MiB" : "64MiB";
          std::printf("%-6zu %-6s %-13s %3d %14.3e %14.3e  %.2f [%.2f-%.2f]\n", bytes, ring_name, mode_name(mode), n,
                      w.median, c.median, q.median, q.lo, q.hi);
          std::fflush(stdout);
          record({{"bench", "fanout"}, {"row_bytes", bytes}, {"ring", ring_name}, {"mode", mode_name(mode)},
                  {"readers", n}, {"rows_per_s", w.median}, {"control", mode_name(control_mode)},
                  {"control_rows_per_s", c.median},
                  {"ratio_median", q.median}, {"ratio_min", q.lo}, {"ratio_max", q.hi}, {"rounds", rounds}});
        }
}

}  // namespace bench
