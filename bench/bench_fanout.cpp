// Fan-out: what N reader processes cost the producer, beside what the same memory traffic costs without the
// ring (issues 21, 34). The producer thread (CPU 0) writes rows as fast as it can for a fixed time; N forked
// processes (all on CPU 1) either read the ring - read_new in batches of 1024, yielding when empty, polling the
// next slot (Poll::kSlot), the head (Poll::kHead), or asleep in wait() (kBlock) - or do what the control for
// that ring is. 64 MiB ring (memory-bound): stream reads over a private 64 MiB buffer, 64 KiB at a time - the
// same memory traffic without touching the producer's lines; the figures are the producer's rate with N
// readers and with N streamers, each divided by its rate alone (N = 0) in the same round, and their ratio.
// 1 MiB ring (cache-resident, where rows must cross between the caches anyway): follow the head of the same
// ring and memcpy the rows out with no validation at all (the cross-core streaming floor); the figure is the
// rate with N readers divided by the rate with N followers. Runs alternate within each round. The readers use
// the default options, so they are paced when the producer outruns them (ConsumerOptions::pace); each run
// prints the fraction of the readers' catch-ups that were paced, so that a run on any CPU shows whether the
// mechanism engaged.
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

enum class Mode { kSlot, kHead, kBlock, kStreamer, kFollower, kIdler };
const char* mode_name(Mode m) {
  switch (m) {
    case Mode::kSlot: return "slot polling";
    case Mode::kHead: return "head polling";
    case Mode::kBlock: return "blocking";
    case Mode::kStreamer: return "read streamer";
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
  // The readers' pacing counters (RawConsumer::pacing), summed at their exit; the measured reader's apart.
  std::atomic<std::uint64_t> catch_ups{0}, pauses{0}, measured_catch_ups{0}, measured_pauses{0};
};

// The measured reader: spins on try_next (default options) and records how old each row is when it arrives.
[[noreturn]] void latency_child(const std::string& path, Control* ctl, std::size_t row_bytes) {
  pin(g_cpu_consumer);
  cbuf::RawConsumer c(path, cbuf::ConsumerOptions().start(cbuf::Start::kEnd).prefault(true));
  std::vector<std::byte> row(row_bytes);
  ctl->started.fetch_add(1);
  while (!ctl->stop.load(std::memory_order_relaxed)) {
    if (!c.try_next(row.data()).has_row) {
      if (ctl->stop.load(std::memory_order_relaxed)) break;
      continue;
    }
    std::int64_t stamp;
    std::memcpy(&stamp, row.data(), sizeof stamp);
    const std::size_t k = ctl->samples.load(std::memory_order_relaxed);
    if (k < Control::kMaxSamples) {
      ctl->latency_ns[k] = now_ns() - stamp;
      ctl->samples.store(k + 1, std::memory_order_relaxed);
    }
  }
  ctl->measured_catch_ups += c.pacing().catch_ups;
  ctl->measured_pauses += c.pacing().pauses;
  _exit(0);
}

[[noreturn]] void child(Mode mode, const std::string& path, Control* ctl, std::size_t row_bytes,
                        int cpu = g_cpu_consumer) {
  pin(cpu);
  if (mode == Mode::kStreamer) {  // reads 64 MiB of private memory, 64 KiB at a time, as a reader reads rows
    std::vector<std::uint64_t> a((64u << 20) / 8, 1), chunk((64u << 10) / 8);
    ctl->started.fetch_add(1);
    std::uint64_t sum = 0;
    for (std::size_t at = 0; !ctl->stop.load(std::memory_order_relaxed); at = (at + chunk.size()) % a.size()) {
      std::memcpy(chunk.data(), a.data() + at, chunk.size() * 8);
      sum += chunk[at % chunk.size()];
    }
    _exit(sum != 0 ? 0 : 1);
  }
  if (mode == Mode::kIdler) {  // busy on the CPU without touching the ring
    ctl->started.fetch_add(1);
    while (!ctl->stop.load(std::memory_order_relaxed)) sched_yield();
    _exit(0);
  }
  try {
    cbuf::ConsumerOptions o;
    o.start(cbuf::Start::kEnd).poll(mode == Mode::kHead ? cbuf::Poll::kHead : cbuf::Poll::kSlot).prefault(true);
    if (g_reader_pace) o.pace(*g_reader_pace);
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
    ctl->catch_ups += c.pacing().catch_ups;
    ctl->pauses += c.pacing().pauses;
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

struct RunResult {
  double rate = 0;    // the producer's rows/s
  double paced = 0;   // the fraction of the readers' catch-ups that were paced
};

// Producer rows/s over `seconds` with n children of `mode`.
RunResult run(Mode mode, int n, const std::string& dir, std::size_t row_bytes, std::uint64_t ring_bytes,
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
  const std::uint64_t catch_ups = ctl->catch_ups.load(), pauses = ctl->pauses.load();
  ::munmap(ctl, sizeof(Control));
  return {rate, catch_ups == 0 ? 0.0 : static_cast<double>(pauses) / static_cast<double>(catch_ups)};
}

// p50 and p99 one-way latency (ns) of one spinning reader (CPU 1), beside 15 other processes: readers of the same
// ring (slot polling, yielding when empty, as in the fan-out runs) or, for the baseline, idlers that keep the
// same CPU as busy without touching the ring. This machine has two CPUs, so the others run on the producer's: on
// the measured reader's CPU they would take its time, which is not what is measured here. The producer sleeps
// between rows and runs at real-time priority where allowed, so that they never delay its writes.
struct LatencyResult {
  double p50 = 0, p99 = 0;
  double paced = 0;  // the fraction of the measured reader's catch-ups that were paced
};

LatencyResult latency_beside(Mode others, const std::string& dir, std::size_t row_bytes, double seconds) {
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
  const std::uint64_t catch_ups = ctl->measured_catch_ups.load(), pauses = ctl->measured_pauses.load();
  ::munmap(ctl, sizeof(Control));
  if (v.empty()) return {};
  return {percentile(v, 0.50), percentile(v, 0.99),
          catch_ups == 0 ? 0.0 : static_cast<double>(pauses) / static_cast<double>(catch_ups)};
}

}  // namespace

void bench_fanout(const std::string& dir, int rounds, bool quick, const std::vector<std::size_t>& sizes) {
  rounds = std::min(rounds, 3);  // a few minutes for the section
  const double seconds = quick ? 0.2 : 0.5;
  const std::vector<int> counts = quick ? std::vector<int>{1, 4, 16} : std::vector<int>{1, 2, 4, 8, 16};
  const std::string cpu = cpu_model();
  std::printf("\n== Fan-out on %s: the producer's rows/s with N reader processes on the other CPU. 64 MiB ring: "
              "with N readers / alone next to with N read streamers (64 MiB of private memory, 64 KiB at a time) "
              "/ alone, and their ratio. 1 MiB ring: with N readers / with N unvalidated followers of the head. "
              "paced: the readers' catch-ups that were paced. Readers' pace: %s\n", cpu.c_str(),
              g_reader_pace ? (std::to_string(g_reader_pace->count()) + " ns").c_str() : "the default");
  std::printf("%-6s %-6s %-13s %3s %14s %11s %11s  %-22s %s\n", "row", "ring", "readers", "N", "with readers",
              "/alone", "ctrl/alone", "ratio median [min-max]", "paced");
  for (const std::size_t bytes : sizes)
    for (const std::uint64_t ring : {1ull << 20, 64ull << 20})
      for (const Mode mode : {Mode::kSlot, Mode::kHead, Mode::kBlock})
        for (const int n : counts) {
          const bool big = ring == (64ull << 20);
          const Mode control_mode = big ? Mode::kStreamer : Mode::kFollower;
          std::vector<double> with, alone, control, ratios, with_alone, control_alone, paced;
          for (int r = 0; r < rounds; ++r) {
            const RunResult w = run(mode, n, dir, bytes, ring, seconds);
            const RunResult c = run(control_mode, n, dir, bytes, ring, seconds);
            with.push_back(w.rate);
            control.push_back(c.rate);
            paced.push_back(w.paced);
            if (big) {
              alone.push_back(run(Mode::kIdler, 0, dir, bytes, ring, seconds).rate);
              with_alone.push_back(w.rate / alone.back());
              control_alone.push_back(c.rate / alone.back());
            }
            ratios.push_back(w.rate / c.rate);
          }
          const Stat w = summarize(with), q = summarize(ratios), pf = summarize(paced);
          const char* ring_name = big ? "64MiB" : "1MiB";
          char per_alone[32] = "", ctrl_alone[32] = "";
          if (big) {
            std::snprintf(per_alone, sizeof per_alone, "%.2f", summarize(with_alone).median);
            std::snprintf(ctrl_alone, sizeof ctrl_alone, "%.2f", summarize(control_alone).median);
          }
          char ratio[48];
          std::snprintf(ratio, sizeof ratio, "%.2f [%.2f-%.2f]", q.median, q.lo, q.hi);
          std::printf("%-6zu %-6s %-13s %3d %14.3e %11s %11s  %-22s %3.0f%%\n", bytes, ring_name, mode_name(mode), n,
                      w.median, per_alone, ctrl_alone, ratio, 100 * pf.median);
          std::fflush(stdout);
          nlohmann::json rec = {{"bench", "fanout"}, {"cpu", cpu}, {"row_bytes", bytes}, {"ring", ring_name},
                                {"mode", mode_name(mode)}, {"readers", n}, {"rows_per_s", w.median},
                                {"control", mode_name(control_mode)}, {"control_rows_per_s", summarize(control).median},
                                {"ratio_median", q.median}, {"ratio_min", q.lo}, {"ratio_max", q.hi},
                                {"paced_fraction", pf.median}, {"rounds", rounds}};
          if (big) {
            rec["alone_rows_per_s"] = summarize(alone).median;
            rec["readers_over_alone"] = summarize(with_alone).median;
            rec["control_over_alone"] = summarize(control_alone).median;
          }
          record(rec);
        }
  std::printf("\n== Fan-out latency on %s: one reader spinning on try_next on CPU 1, rows every 50 us, beside 15 "
              "idle processes or 15 more readers of the ring (both on the producer's CPU: this machine has two), ns; "
              "paced: the measured reader's catch-ups that were paced\n", cpu.c_str());
  std::printf("%-6s %-22s %10s %10s   %-26s %s\n", "row", "readers", "p50", "p99", "p99 ratio median [min-max]", "paced");
  for (const std::size_t bytes : sizes) {
    std::vector<double> p50a, p99a, p50b, p99b, ratios, paced;
    for (int r = 0; r < rounds; ++r) {
      const LatencyResult a = latency_beside(Mode::kIdler, dir, bytes, seconds);
      const LatencyResult b = latency_beside(Mode::kSlot, dir, bytes, seconds);
      p50a.push_back(a.p50), p99a.push_back(a.p99), p50b.push_back(b.p50), p99b.push_back(b.p99);
      paced.push_back(std::max(a.paced, b.paced));
      ratios.push_back(a.p99 > 0 ? b.p99 / a.p99 : 0);
    }
    const Stat q = summarize(ratios);
    std::printf("%-6zu %-22s %10.0f %10.0f\n", bytes, "1 (+ 15 idlers)", summarize(p50a).median, summarize(p99a).median);
    std::printf("%-6zu %-22s %10.0f %10.0f   %.2f [%.2f-%.2f]%9s %3.0f%%\n", bytes, "1 + 15 readers",
                summarize(p50b).median, summarize(p99b).median, q.median, q.lo, q.hi, "", 100 * summarize(paced).hi);
    std::fflush(stdout);
    record({{"bench", "fanout_latency"}, {"cpu", cpu}, {"row_bytes", bytes}, {"baseline", "15 idlers"},
            {"alone_p50_ns", summarize(p50a).median}, {"alone_p99_ns", summarize(p99a).median},
            {"with15_p50_ns", summarize(p50b).median}, {"with15_p99_ns", summarize(p99b).median},
            {"p99_ratio_median", q.median}, {"p99_ratio_min", q.lo}, {"p99_ratio_max", q.hi},
            {"paced_fraction_max", summarize(paced).hi}, {"rounds", rounds}});
  }
}

}  // namespace bench
