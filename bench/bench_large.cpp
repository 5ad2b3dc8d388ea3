// Large rows (64 B to 64 KiB), each figure beside a hand-written baseline over the same slots of the same ring,
// measured in the same run, in alternating rounds:
//
// writer:    producer rows/s (cbuf::Producer::write) against a writer that does what the fence-form seqlock
//            does, written out by hand: odd sequence word, release fence, memcpy, release store of the even
//            word - and nothing else (no head, no index bookkeeping, no wake check). One thread, no reader.
// streaming: rows delivered per second to one batch reader (read_new into a buffer) on the other core, against
//            the unvalidated cross-core floor: the same slots, the producer memcpys each row in and stores a
//            head, the reader memcpys whatever the head says is there - no sequence words, no validation, so
//            it may copy torn rows. Rows delivered = rows the reader copied out; lost rows count against both.
#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <cbuf/cbuf.hpp>

#include "bench_common.hpp"

namespace bench {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// A producer's ring opened a second time, writable, for the hand-written baselines: the same pages, the same
// slot size and capacity as cbuf's own writes use.
struct SameSlots {
  cbuf::RawProducer producer;
  cbuf::Layout layout;
  cbuf::os::Fd fd;
  cbuf::os::Mapping rw;

  SameSlots(const std::string& dir, std::uint32_t row_bytes, std::uint64_t ring_bytes)
      : producer(cbuf::ProducerOptions().dir(dir).name("cbuf-bench-large").on_close(cbuf::OnClose::kUnlink)
                     .capacity(std::max<std::uint64_t>(16, ring_bytes / cbuf::slot_size_for(row_bytes))),
                 row_bytes) {
    cbuf::RawConsumer probe(producer.path());
    layout = probe.layout();
    fd = cbuf::os::Fd(::open(producer.path().c_str(), O_RDWR | O_CLOEXEC));
    rw = cbuf::os::map(fd.get(), layout.file_size, producer.path(), {.writable = true});
  }
  std::byte* slot(std::uint64_t i) const { return rw.data() + layout.data_offset + i * layout.slot_size; }
};

std::uint64_t rows_for(std::size_t bytes, bool quick) {
  const std::uint64_t total = (quick ? 64ull : 512ull) << 20;  // bytes moved per run
  return std::clamp<std::uint64_t>(total / bytes, 2048, quick ? 1'000'000 : 4'000'000);
}

// Rows per read_new call: up to 1 MiB of rows.
std::size_t batch_rows(std::size_t bytes) { return std::max<std::size_t>(1, std::min<std::size_t>(256, (1u << 20) / bytes)); }

void writer_rounds(const std::string& dir, std::size_t bytes, int rounds, bool quick) {
  SameSlots ring(dir, static_cast<std::uint32_t>(bytes), 64ull << 20);
  const std::uint64_t capacity = ring.layout.capacity, rows = rows_for(bytes, quick);
  std::vector<std::byte> row(bytes, std::byte{0x5a});
  std::vector<double> cand, base, ratios;
  pin(g_cpu_producer);
  for (int r = 0; r < rounds; ++r) {
    // Baseline: the fence-form seqlock written out by hand, into the same slots.
    auto t0 = Clock::now();
    for (std::uint64_t i = 0, s = 0; i < rows; ++i) {
      std::byte* slot = ring.slot(s);
      std::atomic_ref<std::uint64_t> seq(*reinterpret_cast<std::uint64_t*>(slot));
      seq.store(2 * i + 1, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_release);
      std::memcpy(slot + 8, row.data(), bytes);
      seq.store(2 * i + 2, std::memory_order_release);
      if (++s == capacity) s = 0;
    }
    asm volatile("" ::: "memory");
    const double tb = seconds_since(t0);
    t0 = Clock::now();
    for (std::uint64_t i = 0; i < rows; ++i) ring.producer.write(row.data());
    const double tc = seconds_since(t0);
    base.push_back(static_cast<double>(rows) / tb);
    cand.push_back(static_cast<double>(rows) / tc);
    ratios.push_back(tb / tc);
  }
  const Stat cs = summarize(cand), bs = summarize(base), rs = summarize(ratios);
  std::printf("%-8zu %-10s %14.3e %9.2f %14.3e %9.2f  %.2f [%.2f-%.2f]\n", bytes, "writer", cs.median,
              cs.median * static_cast<double>(bytes) / 1e9, bs.median, bs.median * static_cast<double>(bytes) / 1e9,
              rs.median, rs.lo, rs.hi);
  record({{"bench", "large_rows"}, {"what", "writer"}, {"bytes", bytes}, {"capacity", capacity},
          {"cbuf_rows_per_s", cs.median}, {"baseline_rows_per_s", bs.median},
          {"baseline", "memcpy between fences, same slots"}, {"ratio_median", rs.median}, {"ratio_min", rs.lo},
          {"ratio_max", rs.hi}, {"rounds", rounds}, {"rows", rows}});
}

struct Delivered {
  double rows_per_s;
  std::uint64_t lost;
};

// cbuf: a producer thread writes `rows` rows; a reader thread on the other core calls read_new until it has
// accounted for all of them (received or lost).
Delivered stream_cbuf(SameSlots& ring, std::size_t bytes, std::uint64_t rows) {
  const std::uint64_t first = ring.producer.next_index();
  std::atomic<bool> ready{false};
  std::uint64_t received = 0, lost = 0;
  Clock::time_point t0, t1;
  std::thread reader([&] {
    pin(g_cpu_consumer);
    // prefault: its own mapping of the ring is populated at attach, as the floor's (already written) one is.
    cbuf::RawConsumer c(ring.producer.path(), cbuf::ConsumerOptions().start_index(first).prefault(true));
    std::vector<std::byte> buf(batch_rows(bytes) * bytes);
    ready = true;
    while (received + lost < rows) {
      const cbuf::Batch b = c.read_new(buf.data(), batch_rows(bytes));
      received += b.count;
      lost += b.lost.count;
      if (b.count == 0) cpu_relax();
    }
    t1 = Clock::now();
  });
  pin(g_cpu_producer);
  std::vector<std::byte> row(bytes, std::byte{0x5a});
  while (!ready) cpu_relax();
  t0 = Clock::now();
  for (std::uint64_t i = 0; i < rows; ++i) ring.producer.write(row.data());
  reader.join();
  return {static_cast<double>(received) / std::chrono::duration<double>(t1 - t0).count(), lost};
}

// The floor: the same slots, memcpy in and out, a head and nothing else.
Delivered stream_floor(SameSlots& ring, std::size_t bytes, std::uint64_t rows) {
  alignas(128) static std::atomic<std::uint64_t> head;
  head.store(0);
  const std::uint64_t capacity = ring.layout.capacity;
  const std::uint64_t slot_size = ring.layout.slot_size;
  std::atomic<bool> ready{false};
  std::uint64_t received = 0, lost = 0;
  Clock::time_point t0, t1;
  std::thread reader([&] {
    pin(g_cpu_consumer);
    std::vector<std::byte> buf(batch_rows(bytes) * bytes);
    std::uint64_t cursor = 0;
    ready = true;
    while (cursor < rows) {
      const std::uint64_t h = head.load(std::memory_order_acquire);
      if (h - cursor > capacity) {  // lapped: skip to the oldest row still there
        lost += h - capacity - cursor;
        cursor = h - capacity;
      }
      const std::uint64_t n = std::min<std::uint64_t>(h - cursor, batch_rows(bytes));
      for (std::uint64_t k = 0; k < n; ++k)
        std::memcpy(buf.data() + k * bytes, ring.slot((cursor + k) % capacity) + 8, bytes);
      cursor += n;
      received += n;
      if (n == 0) cpu_relax();
    }
    t1 = Clock::now();
  });
  pin(g_cpu_producer);
  std::vector<std::byte> row(bytes, std::byte{0x5a});
  while (!ready) cpu_relax();
  t0 = Clock::now();
  std::byte* const base = ring.slot(0) + 8;
  for (std::uint64_t i = 0, s = 0; i < rows; ++i) {
    std::memcpy(base + s * slot_size, row.data(), bytes);
    head.store(i + 1, std::memory_order_release);
    if (++s == capacity) s = 0;
  }
  reader.join();
  return {static_cast<double>(received) / std::chrono::duration<double>(t1 - t0).count(), lost};
}

void streaming_rounds(const std::string& dir, std::size_t bytes, int rounds, bool quick) {
  SameSlots ring(dir, static_cast<std::uint32_t>(bytes), 64ull << 20);
  const std::uint64_t rows = rows_for(bytes, quick);
  std::vector<double> cand, base, ratios;
  std::vector<double> cand_lost, base_lost;
  for (int r = 0; r < rounds; ++r) {
    const Delivered f = stream_floor(ring, bytes, rows);
    const Delivered c = stream_cbuf(ring, bytes, rows);
    cand.push_back(c.rows_per_s);
    base.push_back(f.rows_per_s);
    ratios.push_back(c.rows_per_s / f.rows_per_s);
    cand_lost.push_back(100.0 * static_cast<double>(c.lost) / static_cast<double>(rows));
    base_lost.push_back(100.0 * static_cast<double>(f.lost) / static_cast<double>(rows));
  }
  const Stat cs = summarize(cand), bs = summarize(base), rs = summarize(ratios);
  const double cl = summarize(cand_lost).median, bl = summarize(base_lost).median;
  std::printf("%-8zu %-10s %14.3e %9.2f %14.3e %9.2f  %.2f [%.2f-%.2f]  lost %.1f%% / %.1f%%\n", bytes, "streaming",
              cs.median, cs.median * static_cast<double>(bytes) / 1e9, bs.median,
              bs.median * static_cast<double>(bytes) / 1e9, rs.median, rs.lo, rs.hi, cl, bl);
  record({{"bench", "large_rows"}, {"what", "streaming"}, {"bytes", bytes}, {"capacity", ring.layout.capacity},
          {"cbuf_rows_per_s", cs.median}, {"baseline_rows_per_s", bs.median},
          {"baseline", "unvalidated cross-core floor"}, {"cbuf_lost_pct", cl}, {"baseline_lost_pct", bl},
          {"ratio_median", rs.median}, {"ratio_min", rs.lo}, {"ratio_max", rs.hi}, {"rounds", rounds},
          {"rows", rows}});
}

}  // namespace

void bench_large_rows(const std::string& dir, const std::vector<std::size_t>& sizes, int rounds, bool quick) {
  std::printf("\n== Large rows, 64 MiB ring: writer = cbuf write vs memcpy between fences into the same slots (one "
              "thread);\n   streaming = rows delivered to one batch reader on the other core vs the unvalidated "
              "cross-core floor\n");
  std::printf("%-8s %-10s %14s %9s %14s %9s  %s\n", "bytes", "measure", "cbuf rows/s", "GB/s", "baseline rows/s",
              "GB/s", "ratio median [min-max]");
  for (const std::size_t bytes : sizes) writer_rounds(dir, bytes, rounds, quick);
  for (const std::size_t bytes : sizes) streaming_rounds(dir, bytes, rounds, quick);
}

}  // namespace bench
