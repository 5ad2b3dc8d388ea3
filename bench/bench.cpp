// cbuf benchmarks. Every figure is printed beside a baseline measured in the same run, on the same pinned
// cores, alternating baseline and candidate rounds; ratios are medians with their min-max over the rounds.
//
//   cbuf_bench [--rounds R] [--json FILE] [--quick]
//
// Throughput: producer rows/s writing 64-byte rows into a 1 MiB and a 64 MiB ring, with 0 and 1 spinning
//   consumer, against a memcpy of the same rows into the same slots of the same ring (the protocol's cost).
// Latency: one-way latency of 64/256/512-byte rows (timestamp written in the row, observed by a spinning
//   consumer on the other core), against a two-cache-line ping-pong between the same cores measured the same
//   way (timestamp in line A, acknowledgement in line B).
#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <cbuf/cbuf.hpp>

namespace {

using Clock = std::chrono::steady_clock;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

int g_cpu_producer = 0, g_cpu_consumer = 1;

void pin(int cpu) {
  try {
    cbuf::pin_current_thread(cpu);
  } catch (const cbuf::Error& e) {
    std::fprintf(stderr, "warning: %s\n", e.what());
  }
}

struct Stat {
  double median, lo, hi;
};
Stat summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v.front(), v.back()};
}
double percentile(std::vector<std::int64_t>& v, double p) {
  std::sort(v.begin(), v.end());
  return static_cast<double>(v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))]);
}

std::string g_dir;
std::vector<std::string> g_json;

using cbuf::detail::cpu_relax;  // the runtime's spin-wait hint (wait.hpp)

// ------------------------------------------------------------------------------------------------------
// Throughput
struct Row64 {
  std::uint64_t w[8];
};

// Consumer thread for the "1 consumer" cases: spinning, or blocking in wait() between batches.
struct Spinner {
  std::atomic<bool> stop{false};
  std::thread t;
  std::uint64_t received = 0, lost = 0;
  void start(const std::string& path, bool blocking = false, cbuf::Poll poll = cbuf::Poll::kSlot) {
    t = std::thread([this, path, blocking, poll] {
      pin(g_cpu_consumer);
      cbuf::Consumer<Row64> c(path, cbuf::ConsumerOptions().start(cbuf::Start::kEnd).poll(poll));
      Row64 buf[64];
      while (!stop.load(std::memory_order_relaxed)) {
        if (blocking) c.raw().wait(std::chrono::milliseconds(10), cbuf::Idle::kBlock);
        auto b = c.read_new(buf);
        received += b.count;
        lost += b.lost.count;
        if (b.count == 0) cpu_relax();
      }
    });
  }
  void finish() {
    stop = true;
    t.join();
  }
};

void bench_throughput(int rounds, bool quick) {
  std::printf("\n== Throughput: producer, 64-byte rows (baseline: memcpy of the same rows into the same slots)\n");
  std::printf("%-10s %-12s %16s %10s %16s %10s  %s\n", "ring", "consumers", "cbuf rows/s", "GB/s", "memcpy rows/s",
              "GB/s", "ratio median [min-max]");
  for (std::uint64_t ring_bytes : {1ull << 20, 64ull << 20}) {
    for (int consumers : {0, 1, 3, 2}) {  // 1: spinning (slot polling), 3: spinning (head polling), 2: blocking
      const std::uint64_t capacity = ring_bytes / cbuf::slot_size_for(sizeof(Row64));
      const std::uint64_t rows = quick ? capacity * 2 : std::max<std::uint64_t>(capacity * 4, 4'000'000);
      cbuf::Producer<Row64> p(cbuf::ProducerOptions().dir(g_dir).capacity(capacity).on_close(cbuf::OnClose::kUnlink));
      // The baseline writes into the same pages through a second, writable mapping of the same file.
      cbuf::RawConsumer probe(p.path());
      const cbuf::Layout layout = probe.layout();
      cbuf::shm::Fd fd(::open(p.path().c_str(), O_RDWR | O_CLOEXEC));
      cbuf::shm::Mapping rw = cbuf::shm::map(fd.get(), layout.file_size, /*writable=*/true, p.path());
      std::byte* slots = rw.data() + layout.data_offset + cbuf::seqlock::kSeqOffset;  // slot 0's row bytes
      const std::size_t slot_size = layout.slot_size;
      std::vector<double> ratios, cand, base;
      pin(g_cpu_producer);
      Row64 row{};
      for (int r = 0; r < rounds; ++r) {
        // Baseline: memcpy each row into its slot's row bytes, same order, same wrap.
        auto t0 = Clock::now();
        std::uint64_t slot = 0;
        for (std::uint64_t i = 0; i < rows; ++i) {
          row.w[0] = i;
          std::memcpy(slots + slot * slot_size, &row, sizeof row);
          if (++slot == capacity) slot = 0;
        }
        asm volatile("" ::: "memory");
        const double tb = std::chrono::duration<double>(Clock::now() - t0).count();
        Spinner spin;
        if (consumers) spin.start(p.path(), consumers == 2, consumers == 3 ? cbuf::Poll::kHead : cbuf::Poll::kSlot);
        t0 = Clock::now();
        for (std::uint64_t i = 0; i < rows; ++i) {
          row.w[0] = i;
          p.write(row);
        }
        const double tc = std::chrono::duration<double>(Clock::now() - t0).count();
        if (consumers) spin.finish();
        base.push_back(static_cast<double>(rows) / tb);
        cand.push_back(static_cast<double>(rows) / tc);
        ratios.push_back(tb / tc);
      }
      const Stat rs = summarize(ratios), cs = summarize(cand), bs = summarize(base);
      const std::string ring = ring_bytes == (1u << 20) ? "1MiB" : "64MiB";
      const char* who = consumers == 0 ? "0" : consumers == 1 ? "1 spin" : consumers == 3 ? "1 spin/head" : "1 block";
      std::printf("%-10s %-12s %16.3e %10.2f %16.3e %10.2f  %.2f [%.2f-%.2f]\n", ring.c_str(), who, cs.median,
                  cs.median * 64 / 1e9, bs.median, bs.median * 64 / 1e9, rs.median, rs.lo, rs.hi);
      char buf[512];
      std::snprintf(buf, sizeof buf,
                    R"({"bench":"throughput","ring":"%s","row_bytes":64,"consumers":"%s","cbuf_rows_per_s":%.4e,)"
                    R"("memcpy_rows_per_s":%.4e,"ratio_median":%.3f,"ratio_min":%.3f,"ratio_max":%.3f,"rounds":%d})",
                    ring.c_str(), who, cs.median, bs.median, rs.median, rs.lo, rs.hi, rounds);
      g_json.push_back(buf);
    }
  }
}

// ------------------------------------------------------------------------------------------------------
// Latency
struct alignas(128) Line {
  std::atomic<std::int64_t> v{0};
};

// Ping-pong floor: the producer stores a timestamp and then a sequence number into line A; the consumer spins
// on A, records now - timestamp, and acknowledges in line B; the producer waits for the acknowledgement.
std::vector<std::int64_t> pingpong(int n) {
  struct alignas(128) LineA {
    std::atomic<std::int64_t> seq{0};
    std::atomic<std::int64_t> ts{0};
  };
  static LineA a;
  static Line b_ack;
  auto& a_seq = a.seq;
  auto& a_ts = a.ts;
  a_seq = 0;
  b_ack.v = 0;
  std::vector<std::int64_t> lat(n);
  std::thread consumer([&] {
    pin(g_cpu_consumer);
    for (int i = 1; i <= n; ++i) {
      while (a_seq.load(std::memory_order_acquire) != i) cpu_relax();
      lat[i - 1] = now_ns() - a_ts.load(std::memory_order_relaxed);
      b_ack.v.store(i, std::memory_order_release);
    }
  });
  pin(g_cpu_producer);
  for (int i = 1; i <= n; ++i) {
    a_ts.store(now_ns(), std::memory_order_relaxed);
    a_seq.store(i, std::memory_order_release);
    while (b_ack.v.load(std::memory_order_acquire) != i) cpu_relax();
  }
  consumer.join();
  return lat;
}

// cbuf: the producer writes a row holding its timestamp; the consumer spins on try_next and acknowledges in a
// separate line so that no row queues behind another (one-way latency, not throughput).
std::vector<std::int64_t> cbuf_latency(int n, std::uint32_t row_bytes) {
  static Line ack;
  ack.v = 0;
  cbuf::RawProducer p(cbuf::ProducerOptions().dir(g_dir).capacity(1024).on_close(cbuf::OnClose::kUnlink), row_bytes);
  std::vector<std::int64_t> lat(n);
  std::thread consumer([&] {
    pin(g_cpu_consumer);
    cbuf::RawConsumer c(p.path());
    std::vector<std::byte> buf(row_bytes);
    for (int i = 1; i <= n; ++i) {
      cbuf::Next next;
      while (!(next = c.try_next(buf.data())).has_row) cpu_relax();
      std::int64_t ts;
      std::memcpy(&ts, buf.data(), 8);
      lat[i - 1] = now_ns() - ts;
      ack.v.store(i, std::memory_order_release);
    }
  });
  pin(g_cpu_producer);
  std::vector<std::byte> row(row_bytes);
  for (int i = 1; i <= n; ++i) {
    const std::int64_t ts = now_ns();
    std::memcpy(row.data(), &ts, 8);
    p.write(row.data());
    while (ack.v.load(std::memory_order_acquire) != i) cpu_relax();
  }
  consumer.join();
  return lat;
}

// Raw futex floor: the consumer sleeps in FUTEX_WAIT on a shared word; the producer stores a timestamp, bumps
// the word and calls FUTEX_WAKE; the consumer records now - timestamp and acknowledges (spinning) in line B.
std::vector<std::int64_t> futex_pingpong(int n) {
  struct alignas(128) LineA {
    std::atomic<std::uint32_t> word{0};
    std::atomic<std::int64_t> ts{0};
  };
  static LineA a;
  static Line b_ack;
  a.word = 0;
  b_ack.v = 0;
  std::vector<std::int64_t> lat(n);
  std::thread consumer([&] {
    pin(g_cpu_consumer);
    for (int i = 1; i <= n; ++i) {
      while (a.word.load(std::memory_order_acquire) != static_cast<std::uint32_t>(i))
        cbuf::detail::futex_wait(reinterpret_cast<const std::uint32_t*>(&a.word), static_cast<std::uint32_t>(i - 1),
                                 std::chrono::milliseconds(100));
      lat[i - 1] = now_ns() - a.ts.load(std::memory_order_relaxed);
      b_ack.v.store(i, std::memory_order_release);
    }
  });
  pin(g_cpu_producer);
  for (int i = 1; i <= n; ++i) {
    std::this_thread::sleep_for(std::chrono::microseconds(50));  // let the consumer fall asleep
    a.ts.store(now_ns(), std::memory_order_relaxed);
    a.word.store(static_cast<std::uint32_t>(i), std::memory_order_release);
    cbuf::detail::futex_wake_all(reinterpret_cast<std::uint32_t*>(&a.word));
    while (b_ack.v.load(std::memory_order_acquire) != i) cpu_relax();
  }
  consumer.join();
  return lat;
}

// cbuf blocking wait: the consumer sleeps in wait(kBlock) until the producer's write wakes it.
std::vector<std::int64_t> cbuf_wakeup(int n) {
  static Line ack;
  ack.v = 0;
  cbuf::RawProducer p(cbuf::ProducerOptions().dir(g_dir).capacity(1024).on_close(cbuf::OnClose::kUnlink), 64);
  std::vector<std::int64_t> lat(n);
  std::thread consumer([&] {
    pin(g_cpu_consumer);
    cbuf::RawConsumer c(p.path());
    std::byte buf[64];
    for (int i = 1; i <= n; ++i) {
      cbuf::Next next;
      while (!(next = c.try_next(buf)).has_row) c.wait(std::chrono::seconds(1), cbuf::Idle::kBlock);
      std::int64_t ts;
      std::memcpy(&ts, buf, 8);
      lat[i - 1] = now_ns() - ts;
      ack.v.store(i, std::memory_order_release);
    }
  });
  pin(g_cpu_producer);
  std::byte row[64] = {};
  for (int i = 1; i <= n; ++i) {
    std::this_thread::sleep_for(std::chrono::microseconds(50));  // let the consumer fall asleep
    const std::int64_t ts = now_ns();
    std::memcpy(row, &ts, 8);
    p.write(row);
    while (ack.v.load(std::memory_order_acquire) != i) cpu_relax();
  }
  consumer.join();
  return lat;
}

void bench_wakeup(int rounds, bool quick) {
  const int n = quick ? 500 : 3000;
  std::printf("\n== Wake-up latency of a blocked consumer, 64-byte rows, ns (baseline: raw futex wake between the same cores)\n");
  std::printf("%-12s %10s %10s %12s %12s  %s\n", "", "cbuf p50", "p99", "futex p50", "futex p99", "p50 ratio median [min-max]");
  std::vector<double> ratios, c50, c99, f50, f99;
  for (int r = 0; r < rounds; ++r) {
    auto base = futex_pingpong(n);
    auto cand = cbuf_wakeup(n);
    c50.push_back(percentile(cand, 0.5));
    c99.push_back(percentile(cand, 0.99));
    f50.push_back(percentile(base, 0.5));
    f99.push_back(percentile(base, 0.99));
    ratios.push_back(c50.back() / f50.back());
  }
  const Stat rs = summarize(ratios);
  std::printf("%-12s %10.0f %10.0f %12.0f %12.0f  %.2f [%.2f-%.2f]\n", "blocking", summarize(c50).median,
              summarize(c99).median, summarize(f50).median, summarize(f99).median, rs.median, rs.lo, rs.hi);
  char buf[512];
  std::snprintf(buf, sizeof buf,
                R"({"bench":"wakeup","row_bytes":64,"cbuf_p50_ns":%.0f,"cbuf_p99_ns":%.0f,"futex_p50_ns":%.0f,)"
                R"("futex_p99_ns":%.0f,"ratio_median":%.3f,"ratio_min":%.3f,"ratio_max":%.3f,"rounds":%d})",
                summarize(c50).median, summarize(c99).median, summarize(f50).median, summarize(f99).median, rs.median,
                rs.lo, rs.hi, rounds);
  g_json.push_back(buf);
}

void bench_latency(int rounds, bool quick) {
  const int n = quick ? 2000 : 20000;
  std::printf("\n== Latency: one-way, ns (baseline: two-cache-line ping-pong between the same cores)\n");
  std::printf("%-6s %10s %10s %10s %12s %12s  %s\n", "row B", "cbuf p50", "p99", "p99.9", "ping p50", "ping p99",
              "p50 ratio median [min-max]");
  for (std::uint32_t bytes : {64u, 256u, 512u}) {
    std::vector<double> ratios, p50, p99, p999, b50, b99;
    for (int r = 0; r < rounds; ++r) {
      auto base = pingpong(n);
      auto cand = cbuf_latency(n, bytes);
      const double c50 = percentile(cand, 0.5), bb50 = percentile(base, 0.5);
      p50.push_back(c50);
      p99.push_back(percentile(cand, 0.99));
      p999.push_back(percentile(cand, 0.999));
      b50.push_back(bb50);
      b99.push_back(percentile(base, 0.99));
      ratios.push_back(c50 / bb50);
    }
    const Stat rs = summarize(ratios);
    std::printf("%-6u %10.0f %10.0f %10.0f %12.0f %12.0f  %.2f [%.2f-%.2f]\n", bytes, summarize(p50).median,
                summarize(p99).median, summarize(p999).median, summarize(b50).median, summarize(b99).median, rs.median,
                rs.lo, rs.hi);
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  R"({"bench":"latency","row_bytes":%u,"cbuf_p50_ns":%.0f,"cbuf_p99_ns":%.0f,"cbuf_p999_ns":%.0f,)"
                  R"("pingpong_p50_ns":%.0f,"pingpong_p99_ns":%.0f,"ratio_median":%.3f,"ratio_min":%.3f,"ratio_max":%.3f,"rounds":%d})",
                  bytes, summarize(p50).median, summarize(p99).median, summarize(p999).median, summarize(b50).median,
                  summarize(b99).median, rs.median, rs.lo, rs.hi, rounds);
    g_json.push_back(buf);
  }
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 7;
  bool quick = false;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--rounds" && i + 1 < argc) rounds = std::atoi(argv[++i]);
    else if (a == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (a == "--quick") quick = true, rounds = 3;
    else {
      std::fprintf(stderr, "usage: %s [--rounds R] [--json FILE] [--quick]\n", argv[0]);
      return 2;
    }
  }
  g_dir = cbuf::shm::default_dir();
  const unsigned cpus = std::thread::hardware_concurrency();
  if (cpus < 2) std::fprintf(stderr, "warning: one CPU only; producer and consumer share it\n");
  g_cpu_consumer = cpus > 1 ? 1 : 0;
  std::printf("cbuf bench: CPU %s, %u CPUs, producer on CPU %d, consumer on CPU %d, %d alternating rounds\n",
              cpu_model().c_str(), cpus, g_cpu_producer, g_cpu_consumer, rounds);
  try {
    bench_throughput(rounds, quick);
    bench_latency(rounds, quick);
    bench_wakeup(rounds, quick);
  } catch (const cbuf::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  std::printf("\n");
  for (auto& j : g_json) std::printf("%s\n", j.c_str());
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    for (auto& j : g_json) out << j << "\n";
  }
  return 0;
}
