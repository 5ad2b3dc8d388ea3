// Fan-out: what N reader processes cost the producer, beside what the same memory traffic costs without the
// ring (issue 21). The producer thread (CPU 0) writes rows as fast as it can for a fixed time; N forked
// processes (all on CPU 1) either read the ring - read_new in batches of 1024, yielding when empty, polling the
// next slot (Poll::kSlot), the head (Poll::kHead), or asleep in wait() (kBlock) - or do what the control for
// that ring is. 64 MiB ring (memory-bound): copy a private 64 MiB buffer in a loop, the same kind of memory
// traffic without the ring. 1 MiB ring (cache-resident, where rows must cross between the caches anyway):
// follow the head of the same ring and memcpy the rows out with no validation at all (the cross-core
// streaming floor). Reader and control runs alternate within each round; the figure is the producer's rows/s
// with N readers divided by its rows/s with N controls. The readers use the default options (so they are paced
// when the producer outruns them: ConsumerOptions::pace).
// Then the latency one reader sees with 15 others attached: the producer writes a timestamped row every 50 us,
// one reader spins on try_next and records now - stamp, beside 15 other readers or 15 idle processes.
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <cbuf/cbuf.hpp>

#include "bench_common.hpp"

namespace bench {
namespace {

using Clock = std::chrono::steady_clock;

enum class Mode { kSlot, kHead, kBlock, kCopier, kFollower, kIdler };
const char* mode_name(Mode m) {
  switch (m) {
    case Mode::kSlot: return "slot polling";
    case Mode::kHead: return "head polling";
    case Mode::kBlock: return "blocking";
    case Mode::kCopier: return "copier";
    case Mode::kFollower: return "unvalidated follower";
    case Mode::kIdler: return "idler";
  }
  return "?";
}

// A page shared with the children: the stop flag, how many have started, and the measured reader's latencies.
struct Control {
  std::atomic<int> started{0};
  std::atomic<bool> stop{false};
  static constexpr std::size_t kMaxSamples = 1 << 16;
  std::atomic<std::size_t> samples{0};
  std::int64_t latency_ns[kMaxSamples];
};

// The measured reader: spins on try_next (default options) and records how old each row is when it arrives.
[[noreturn]] void latency_child(const std::string& path, Control* ctl, std::size_t row_bytes) {
  pin(g_cpu_consumer);
  cbuf::RawConsumer c(path, cbuf::ConsumerOptions().start(cbuf::Start::kEnd).prefault(true));
  std::vector<std::byte> row(row_bytes);
  ctl->started.fetch_add(1);
  while (!ctl->stop.load(std::memory_order_relaxed)) {
    if (!c.try_next(row.data()).has_row) continue;
    std::int64_t stamp;
    std::memcpy(&stamp, row.data(), sizeof stamp);
    const std::size_t k = ctl->samples.load(std::memory_order_relaxed);
    if (k < Control::kMaxSamples) {
      ctl->latency_ns[k] = now_ns() - stamp;
      ctl->samples.store(k + 1, std::memory_order_relaxed);
    }
  }
  _exit(0);
}

[[noreturn]] void child(Mode mode, const std::string& path, Control* ctl, std::size_t row_bytes,
                        int cpu = g_cpu_consumer) {
  pin(cpu);
  if (mode == Mode::kCopier) {
    std::vector<char> a(32u << 20, 1), b(32u << 20);
    ctl->started.fetch_add(1);
    while (!ctl->stop.load(std::memory_order_relaxed)) std::memcpy(b.data(), a.data(), a.size());
    _exit(b[12345] == 1 ? 0 : 1);
  }
  if (mode == Mode::kIdler) {  // busy on the CPU without touching the ring
    ctl->started.fetch_add(1);
    while (!ctl->stop.load(std::memory_order_relaxed)) sched_yield();
    _exit(0);
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

Control* new_control() {
  void* m = ::mmap(nullptr, sizeof(Control), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw std::runtime_error("fan-out bench: mmap of the control page failed");
  return new (m) Control();
}

// Producer rows/s over `seconds` with n children of `mode`.
double run(Mode mode, int n, const std::string& dir, std::size_t row_bytes, std::uint64_t ring_bytes,
           double seconds) {
  cbuf::RawProducer p(cbuf::ProducerOptions().dir(dir).name("cbuf-bench-fanout").on_close(cbuf::OnClose::kUnlink)
                          .capacity(ring_bytes / cbuf::slot_size_for(static_cast<std::uint32_t>(row_bytes))).prefault(true),
                      static_cast<std::uint32_t>(row_bytes));
  Control* ctl = new_control();
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

// p50 and p99 one-way latency (ns) of one spinning reader (CPU 1), beside 15 other processes: readers of the same
// ring (slot polling, yielding when empty, as in the fan-out runs) or, for the baseline, idlers that keep the
// same CPU as busy without touching the ring. This machine has two CPUs, so the others run on the producer's: on
// the measured reader's CPU they would take its time, which is not what is measured here. The producer sleeps
// between rows and runs at real-time priority where allowed, so that they never delay its writes.
std::pair<double, double> latency_beside(Mode others, const std::string& dir, std::size_t row_bytes, double seconds) {
  constexpr int kOthers = 15;
  cbuf::RawProducer p(cbuf::ProducerOptions().dir(dir).name("cbuf-bench-fanout").on_close(cbuf::OnClose::kUnlink)
                          .capacity((1u << 20) / cbuf::slot_size_for(static_cast<std::uint32_t>(row_bytes))).prefault(true),
                      static_cast<std::uint32_t>(row_bytes));
  Control* ctl = new_control();
  std::vector<pid_t> kids;
  for (int k = 0; k <= kOthers; ++k) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      if (k == 0) latency_child(p.path(), ctl, row_bytes);
      child(others, p.path(), ctl, row_bytes, g_cpu_producer);
    }
    kids.push_back(pid);
  }
  while (ctl->started.load() <= kOthers) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::thread producer([&] {
    pin(g_cpu_producer);
    try {
      cbuf::set_realtime_priority(10);
    } catch (const cbuf::Error&) {  // not allowed: the others may delay a write now and then
    }
    std::vector<std::byte> row(row_bytes, std::byte{0x5a});
    const auto end = Clock::now() + std::chrono::duration<double>(seconds);
    for (auto next = Clock::now(); next < end; next += std::chrono::microseconds(50)) {
      std::this_thread::sleep_until(next);  // the CPU is the others' meanwhile
      const std::int64_t stamp = now_ns();
      std::memcpy(row.data(), &stamp, sizeof stamp);
      p.write(row.data());
    }
  });
  producer.join();
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ctl->stop = true;
  for (const pid_t k : kids) ::waitpid(k, nullptr, 0);
  std::vector<std::int64_t> v(ctl->latency_ns, ctl->latency_ns + ctl->samples.load());
  ::munmap(ctl, sizeof(Control));
  if (v.empty()) return {0, 0};
  return {percentile(v, 0.50), percentile(v, 0.99)};
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
  std::printf("\n== Fan-out latency: one reader spinning on try_next on CPU 1, rows every 50 us, beside 15 idle "
              "processes or 15 more readers of the ring (both on the producer's CPU: this machine has two), ns\n");
  std::printf("%-6s %-22s %10s %10s   %s\n", "row", "readers", "p50", "p99", "p99 ratio median [min-max]");
  for (const std::size_t bytes : {std::size_t{64}, std::size_t{1024}}) {
    std::vector<double> p50a, p99a, p50b, p99b, ratios;
    for (int r = 0; r < rounds; ++r) {
      const auto [a50, a99] = latency_beside(Mode::kIdler, dir, bytes, seconds);
      const auto [b50, b99] = latency_beside(Mode::kSlot, dir, bytes, seconds);
      p50a.push_back(a50), p99a.push_back(a99), p50b.push_back(b50), p99b.push_back(b99);
      ratios.push_back(a99 > 0 ? b99 / a99 : 0);
    }
    const Stat q = summarize(ratios);
    std::printf("%-6zu %-22s %10.0f %10.0f\n", bytes, "1 (+ 15 idlers)", summarize(p50a).median, summarize(p99a).median);
    std::printf("%-6zu %-22s %10.0f %10.0f   %.2f [%.2f-%.2f]\n", bytes, "1 + 15 readers", summarize(p50b).median,
                summarize(p99b).median, q.median, q.lo, q.hi);
    std::fflush(stdout);
    record({{"bench", "fanout_latency"}, {"row_bytes", bytes}, {"baseline", "15 idlers"}, {"alone_p50_ns", summarize(p50a).median},
            {"alone_p99_ns", summarize(p99a).median}, {"with15_p50_ns", summarize(p50b).median},
            {"with15_p99_ns", summarize(p99b).median}, {"p99_ratio_median", q.median}, {"p99_ratio_min", q.lo},
            {"p99_ratio_max", q.hi}, {"rounds", rounds}});
  }
}

}  // namespace bench
