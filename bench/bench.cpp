// cbuf benchmarks (C++). Every figure is printed beside a baseline or peer measured in the same run, on the
// same pinned cores, in alternating rounds; ratios are medians over the rounds with their min-max.
//
//   cbuf_bench [--rounds R] [--json FILE] [--quick] [--only protocol,latency,throughput,large,fanout]
//              [--sizes 64,1024] [--large-sizes 64,1024,4096,16384,65536]
//              [--peers cbuf,unix,...]   (peers by case-insensitive name prefix)
//              [--pace NS]               (fanout: the readers' ConsumerOptions::pace; default the runtime's)
//
// protocol:   producer rows/s writing 64-byte rows into a 1 MiB and a 64 MiB ring, with no, a spinning and a
//             blocking consumer, against a memcpy of the same rows into the same slots of the same ring.
// latency:    one-way latency against iceoryx, ZeroMQ, a Unix domain socket, Boost.Interprocess and the
//             cache-line and futex floors (bench_peers.cpp), polling and blocking consumers.
// throughput: messages/s from one producer to one consumer for the same transports, with a memcpy ceiling.
// large:      rows of 64 B to 64 KiB: the writer against memcpy between fences, rows delivered to a batch
//             reader against the unvalidated cross-core floor (bench_large.cpp), and spin/block latency of
//             cbuf, the floors and iceoryx at the sizes above 1 KiB.
// fanout:     producer rows/s with N reader processes against N processes copying private memory
//             (bench_fanout.cpp).
#include <fcntl.h>

#include <algorithm>
#include <cctype>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <cbuf/cbuf.hpp>

#include "bench_common.hpp"
#include "peers.hpp"

namespace bench {

void bench_peer_latency(const std::vector<Peer>& peers, const std::vector<std::size_t>& sizes, int rounds, bool quick);
void bench_peer_throughput(const std::vector<Peer>& peers, const std::vector<std::size_t>& sizes, int rounds,
                           bool quick);
void bench_large_rows(const std::string& dir, const std::vector<std::size_t>& sizes, int rounds, bool quick);
void bench_fanout(const std::string& dir, int rounds, bool quick, const std::vector<std::size_t>& sizes);

namespace {

using Clock = std::chrono::steady_clock;
std::string g_dir;

// ------------------------------------------------------------------------------------------------------
// Throughput
struct Row64 {
  std::uint64_t w[8];
};

// Who reads while the producer of the protocol benchmark writes.
enum class Readers { kNone, kSpinSlot, kSpinHead, kBlock };
constexpr Readers kReaders[] = {Readers::kNone, Readers::kSpinSlot, Readers::kSpinHead, Readers::kBlock};

const char* describe(Readers r) {
  switch (r) {
    case Readers::kNone: return "0";
    case Readers::kSpinSlot: return "1 spin";
    case Readers::kSpinHead: return "1 spin/head";
    case Readers::kBlock: return "1 block";
  }
  return "?";
}

// Consumer thread for the one-reader cases: spinning (polling the next slot or the head), or blocking in
// wait() between batches.
struct Spinner {
  std::atomic<bool> stop{false};
  std::thread t;
  std::uint64_t received = 0, lost = 0;
  void start(const std::string& path, Readers readers) {
    const bool blocking = readers == Readers::kBlock;
    const cbuf::Poll poll = readers == Readers::kSpinHead ? cbuf::Poll::kHead : cbuf::Poll::kSlot;
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

void bench_protocol(int rounds, bool quick) {
  std::printf("\n== Protocol cost: producer, 64-byte rows (baseline: memcpy of the same rows into the same slots)\n");
  std::printf("%-10s %-12s %16s %10s %16s %10s  %s\n", "ring", "consumers", "cbuf rows/s", "GB/s", "memcpy rows/s",
              "GB/s", "ratio median [min-max]");
  for (std::uint64_t ring_bytes : {1ull << 20, 64ull << 20}) {
    for (const Readers readers : kReaders) {
      const std::uint64_t capacity = ring_bytes / cbuf::slot_size_for(sizeof(Row64));
      const std::uint64_t rows = quick ? capacity * 2 : std::max<std::uint64_t>(capacity * 4, 4'000'000);
      cbuf::Producer<Row64> p(cbuf::ProducerOptions().dir(g_dir).capacity(capacity).on_close(cbuf::OnClose::kUnlink));
      // The baseline writes into the same pages through a second, writable mapping of the same file.
      cbuf::RawConsumer probe(p.path());
      const cbuf::Layout layout = probe.layout();
      cbuf::os::Fd fd(::open(p.path().c_str(), O_RDWR | O_CLOEXEC));
      cbuf::os::Mapping rw = cbuf::os::map(fd.get(), layout.file_size, p.path(), {.writable = true});
      std::byte* slots = rw.data() + layout.data_offset + cbuf::kSeqSize;  // slot 0's row bytes
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
        if (readers != Readers::kNone) spin.start(p.path(), readers);
        t0 = Clock::now();
        for (std::uint64_t i = 0; i < rows; ++i) {
          row.w[0] = i;
          p.write(row);
        }
        const double tc = std::chrono::duration<double>(Clock::now() - t0).count();
        if (readers != Readers::kNone) spin.finish();
        base.push_back(static_cast<double>(rows) / tb);
        cand.push_back(static_cast<double>(rows) / tc);
        ratios.push_back(tb / tc);
      }
      const Stat rs = summarize(ratios), cs = summarize(cand), bs = summarize(base);
      const std::string ring = ring_bytes == (1u << 20) ? "1MiB" : "64MiB";
      std::printf("%-10s %-12s %16.3e %10.2f %16.3e %10.2f  %.2f [%.2f-%.2f]\n", ring.c_str(), describe(readers),
                  cs.median,
                  cs.median * 64 / 1e9, bs.median, bs.median * 64 / 1e9, rs.median, rs.lo, rs.hi);
      record({{"bench", "protocol"}, {"ring", ring}, {"row_bytes", 64}, {"consumers", describe(readers)},
              {"cbuf_rows_per_s", cs.median}, {"memcpy_rows_per_s", bs.median}, {"ratio_median", rs.median},
              {"ratio_min", rs.lo}, {"ratio_max", rs.hi}, {"rounds", rounds}});
    }
  }
}

// True if one of the comma-separated words in `filter` starts `name` (case-insensitive).
bool matches(const std::string& filter, const std::string& name) {
  auto lower = [](std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  const std::string n = lower(name), f = lower(filter) + ",";
  for (std::size_t a = 0, b; (b = f.find(',', a)) != std::string::npos; a = b + 1)
    if (b > a && n.rfind(f.substr(a, b - a), 0) == 0) return true;
  return false;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  using namespace bench;
  int rounds = 7;
  bool quick = false;
  std::string json_path, only = "protocol,latency,throughput,large,fanout", peer_filter;
  std::vector<std::size_t> sizes{64, 1024}, large_sizes{64, 1024, 4096, 16384, 65536};
  auto parse_sizes = [](std::string s) {
    std::vector<std::size_t> out;
    while (!s.empty()) {
      const auto comma = s.find(',');
      out.push_back(std::stoul(s.substr(0, comma)));
      s = comma == std::string::npos ? "" : s.substr(comma + 1);
    }
    return out;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--rounds" && i + 1 < argc) rounds = std::max(1, std::atoi(argv[++i]));
    else if (a == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (a == "--quick") quick = true, rounds = 3;
    else if (a == "--only" && i + 1 < argc) only = argv[++i];
    else if (a == "--peers" && i + 1 < argc) peer_filter = argv[++i];
    else if (a == "--sizes" && i + 1 < argc) sizes = parse_sizes(argv[++i]);
    else if (a == "--large-sizes" && i + 1 < argc) large_sizes = parse_sizes(argv[++i]);
    else if (a == "--pace" && i + 1 < argc) g_reader_pace = std::chrono::nanoseconds(std::atoll(argv[++i]));
    else {
      std::fprintf(stderr,
                   "usage: %s [--rounds R] [--json FILE] [--quick] [--only protocol,latency,throughput,large,fanout] "
                   "[--sizes 64,1024] [--large-sizes 64,...,65536] [--peers NAME-PREFIX,...: cbuf, floor, iceoryx, zeromq, unix, boost] "
                   "[--pace NS]\n",
                   argv[0]);
      return 2;
    }
  }
  for (const auto* list : {&sizes, &large_sizes})
    for (const std::size_t b : *list)
      if (b < 16) {
        std::fprintf(stderr, "--sizes: %zu is too small; messages carry an 8-byte stamp (use 16 or more)\n", b);
        return 2;
      }
  g_dir = shm_dir();
  const unsigned cpus = std::thread::hardware_concurrency();
  if (cpus < 2) std::fprintf(stderr, "warning: one CPU only; producer and consumer share it\n");
  g_cpu_consumer = cpus > 1 ? 1 : 0;
  std::printf("cbuf bench: CPU %s, %u CPUs, producer on CPU %d, consumer on CPU %d, %d alternating rounds\n",
              cpu_model().c_str(), cpus, g_cpu_producer, g_cpu_consumer, rounds);
  record({{"bench", "machine"}, {"cpu", cpu_model()}, {"cpus", cpus}, {"rounds", rounds}, {"quick", quick}});
  std::vector<Peer> peers;
  for (Peer p : {peer_cbuf(), peer_floor_spin(), peer_floor_futex(), peer_iceoryx(), peer_zmq(), peer_uds(),
                 peer_boost_mq()})
    if (peer_filter.empty() || matches(peer_filter, p.name)) peers.push_back(std::move(p));
  int rc = 0;
  try {
    if (only.find("protocol") != std::string::npos) bench_protocol(rounds, quick);
    if (only.find("latency") != std::string::npos) bench_peer_latency(peers, sizes, rounds, quick);
    if (only.find("throughput") != std::string::npos) bench_peer_throughput(peers, sizes, rounds, quick);
    if (only.find("large") != std::string::npos) {
      bench_large_rows(g_dir, large_sizes, rounds, quick);
      std::vector<Peer> few;  // latency above 1 KiB: cbuf, the floors and iceoryx (the other peers copy twice)
      for (const Peer& p : peers)
        if (p.id == "cbuf" || p.id.rfind("floor", 0) == 0 || p.id == "iceoryx") few.push_back(p);
      std::vector<std::size_t> big;
      for (const std::size_t b : large_sizes)
        if (b > 1024) big.push_back(b);
      if (!big.empty()) bench_peer_latency(few, big, rounds, quick);
    }
    if (only.find("fanout") != std::string::npos) bench_fanout(g_dir, rounds, quick, sizes);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    rc = 1;
  }
  peers_shutdown();
  std::printf("\n");
  for (const auto& j : g_json) std::printf("%s\n", j.dump().c_str());
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    for (const auto& j : g_json) out << j.dump() << "\n";
  }
  return rc;
}
