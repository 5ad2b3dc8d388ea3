// cbuf against the transports users would pick instead (peers.hpp), measured by the same code, in the same
// run, on the same pinned cores, in alternating rounds (the order of the peers rotates every round).
//
// Latency: one message in flight at a time. The producer writes a timestamp into the message and sends it;
// the consumer receives it, records now - timestamp, and acknowledges through a separate cache line, which
// the producer waits for before the next message. Spin mode: the consumer polls. Block mode: the consumer
// sleeps in the transport's blocking receive, and the producer waits 50 us before each message so that it
// is asleep when the message comes.
//
// Throughput: the producer sends N messages as fast as the transport lets it (peers with flow control block
// it; cbuf never does, and may drop instead); the consumer polls with the transport's batch receive where it
// has one (cbuf: read_new, up to 256 rows a call; the others: one message a call), and stops at the last one. Throughput
// is messages delivered per second from the first send to the last receive; messages lost are reported.
// Ceiling: memcpy of the same messages into a 1 MiB buffer, one thread.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <string>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <thread>
#include <vector>

#include "bench_common.hpp"
#include "peers.hpp"

namespace bench {
namespace {

struct alignas(128) Line {
  std::atomic<std::int64_t> v{0};
};

// Runs consumer() on the consumer core and producer() here on the producer core. If the consumer fails, the
// producer's waits end through `failed`, and the consumer's exception is rethrown here.
template <class Producer, class Consumer>
void run_pair(Producer producer, Consumer consumer) {
  std::atomic<bool> failed{false};
  std::exception_ptr err;
  std::thread t([&] {
    pin(g_cpu_consumer);
    try {
      consumer();
    } catch (...) {
      err = std::current_exception();
      failed = true;
    }
  });
  pin(g_cpu_producer);
  try {
    producer(failed);
  } catch (...) {
    failed = true;
    t.join();
    throw;
  }
  t.join();
  if (err) std::rethrow_exception(err);
}

std::vector<std::int64_t> latency_run(Channel& ch, std::size_t bytes, int n, bool block) {
  static Line ack;
  ack.v = 0;
  std::vector<std::int64_t> lat(static_cast<std::size_t>(n));
  run_pair(
      [&](const std::atomic<bool>& failed) {
        std::vector<std::byte> msg(bytes, std::byte{0x5a});
        for (int i = 1; i <= n && !failed; ++i) {
          if (block) std::this_thread::sleep_for(std::chrono::microseconds(50));
          const std::int64_t ts = now_ns();
          std::memcpy(msg.data(), &ts, 8);
          ch.send(msg.data());
          while (ack.v.load(std::memory_order_acquire) != i && !failed) cpu_relax();
        }
      },
      [&] {
        std::vector<std::byte> buf(bytes);
        for (int i = 1; i <= n; ++i) {
          if (block)
            ch.recv(buf.data());
          else
            while (!ch.try_recv(buf.data())) cpu_relax();
          std::int64_t ts;
          std::memcpy(&ts, buf.data(), 8);
          lat[static_cast<std::size_t>(i - 1)] = now_ns() - ts;
          ack.v.store(i, std::memory_order_release);
        }
      });
  return lat;
}

struct Delivery {
  double msgs_per_s;
  std::uint64_t lost;
};

Delivery throughput_run(Channel& ch, std::size_t bytes, std::uint64_t n) {
  std::atomic<bool> ready{false};
  std::atomic<std::int64_t> t0{0};
  std::int64_t t1 = 0;
  std::uint64_t received = 0;
  run_pair(
      [&](const std::atomic<bool>& failed) {
        while (!ready && !failed) cpu_relax();
        std::vector<std::byte> msg(bytes, std::byte{0x5a});
        t0 = now_ns();
        for (std::uint64_t i = 0; i < n && !failed; ++i) {
          std::memcpy(msg.data(), &i, 8);
          ch.send(msg.data());
        }
      },
      [&] {
        constexpr std::size_t kBatch = 256;
        std::vector<std::byte> buf(bytes * kBatch);
        ready = true;
        for (std::uint64_t seq = 0; seq + 1 < n;) {
          const std::size_t got = ch.try_recv_batch(buf.data(), kBatch);
          if (got == 0) {
            cpu_relax();
            continue;
          }
          std::memcpy(&seq, buf.data() + (got - 1) * bytes, 8);
          received += got;
        }
        t1 = now_ns();
      });
  return {static_cast<double>(received) * 1e9 / static_cast<double>(t1 - t0.load()), n - received};
}

double memcpy_rate(std::size_t bytes, std::uint64_t n) {
  std::vector<std::byte> ring(1u << 20), msg(bytes, std::byte{0x5a});
  const std::uint64_t slots = ring.size() / bytes;
  pin(g_cpu_producer);
  const std::int64_t t0 = now_ns();
  std::uint64_t slot = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    std::memcpy(msg.data(), &i, 8);
    std::memcpy(ring.data() + slot * bytes, msg.data(), bytes);
    if (++slot == slots) slot = 0;
    asm volatile("" ::"r"(ring.data()) : "memory");
  }
  return static_cast<double>(n) * 1e9 / static_cast<double>(now_ns() - t0);
}

bool write_all(int fd, const void* p, std::size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    c += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// Runs fn() here, or in a child process when the peer asks for it (Peer::isolate); the child sends the
// figures (or its error) back through a pipe and exits normally, so that its static destructors run.
std::vector<double> measure(const Peer& peer, const std::function<std::vector<double>()>& fn) {
  if (!peer.isolate) return fn();
  int fd[2];
  if (::pipe2(fd, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::close(fd[0]);
    std::string out;
    int status = 0;
    try {
      const std::vector<double> v = fn();
      out.assign(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(double));
    } catch (const std::exception& e) {
      out = e.what();
      status = 1;
    }
    write_all(fd[1], out.data(), out.size());
    ::close(fd[1]);
    std::exit(status);
  }
  ::close(fd[1]);
  std::string in;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd[0], buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    in.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) throw std::runtime_error("child process killed by signal " + std::to_string(WTERMSIG(status)));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error(in.empty() ? "child process failed" : in);
  std::vector<double> v(in.size() / sizeof(double));
  std::memcpy(v.data(), in.data(), v.size() * sizeof(double));
  return v;
}

struct Result {
  const Peer* peer;
  std::string skipped;  // why this peer has no figures, if it has none
  std::vector<double> p50, p99, p999, rate, lost;
};

// Runs `one` for every available peer in every round, rotating the order; a peer that throws is skipped from
// then on, with the error as the reason.
template <class One>
std::vector<Result> rounds_over(const std::vector<Peer>& peers, int rounds, One one) {
  std::vector<Result> res;
  for (const Peer& p : peers) {
    res.push_back({&p, p.unavailable, {}, {}, {}, {}, {}});
    if (res.back().skipped.empty() && p.prepare) res.back().skipped = p.prepare();
  }
  for (int r = 0; r < rounds; ++r)
    for (std::size_t k = 0; k < res.size(); ++k) {
      Result& x = res[(k + static_cast<std::size_t>(r)) % res.size()];
      if (!x.skipped.empty()) continue;
      try {
        one(x);
      } catch (const std::exception& e) {
        x.skipped = e.what();
      }
    }
  return res;
}

// Per-round ratios a[i] / b[i] over the rounds both have.
Stat ratio(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> r;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) r.push_back(a[i] / b[i]);
  if (r.empty()) return {0, 0, 0};
  return summarize(r);
}

const Result* find(const std::vector<Result>& res, const std::string& id) {
  for (const Result& r : res)
    if (r.peer->id == id && r.skipped.empty() && !(r.p50.empty() && r.rate.empty())) return &r;
  return nullptr;
}

void print_skipped(const Result& x, const char* what) {
  std::printf("  %-34s skipped: %s\n", x.peer->name.c_str(), x.skipped.c_str());
  record({{"bench", what}, {"peer", x.peer->name}, {"peer_id", x.peer->id}, {"skipped", x.skipped}});
}

}  // namespace

void bench_peer_latency(const std::vector<Peer>& peers, const std::vector<std::size_t>& sizes, int rounds, bool quick) {
  for (const bool block : {false, true}) {
    const int n = block ? (quick ? 500 : 10000) : (quick ? 2000 : 20000);  // block mode: fewer, each ~100 us
    const char* mode = block ? "block" : "spin";
    const std::string floor = block ? "floor_futex" : "floor_spin";  // the reference of cbuf's own ratio
    std::printf("\n== Latency, one-way, %s mode (%s), ns; ratio = p50 / cbuf p50 (cbuf: / floor p50)\n", mode,
                block ? "consumer asleep in the transport's blocking receive" : "consumer polling");
    for (const std::size_t bytes : sizes) {
      std::printf("%-6s %-34s %10s %10s %10s  %s\n", "bytes", "transport", "p50", "p99", "p99.9",
                  "ratio median [min-max]");
      std::vector<Peer> these;
      for (const Peer& p : peers)
        if (block ? p.blocking : p.spinning) these.push_back(p);
      auto res = rounds_over(these, rounds, [&](Result& x) {
        auto v = measure(*x.peer, [&] {
          auto ch = x.peer->make(bytes);
          auto lat = latency_run(*ch, bytes, n, block);
          return std::vector<double>{percentile(lat, 0.5), percentile(lat, 0.99), percentile(lat, 0.999)};
        });
        x.p50.push_back(v.at(0));
        x.p99.push_back(v.at(1));
        x.p999.push_back(v.at(2));
      });
      const Result* cb = find(res, "cbuf");
      const Result* fl = find(res, floor);
      for (const Result& x : res) {
        if (!x.skipped.empty()) {
          print_skipped(x, "peer_latency");
          continue;
        }
        const bool is_cbuf = &x == cb;
        const Stat rs = is_cbuf ? (fl ? ratio(x.p50, fl->p50) : Stat{0, 0, 0}) : (cb ? ratio(x.p50, cb->p50) : Stat{0, 0, 0});
        const double p50 = summarize(x.p50).median, p99 = summarize(x.p99).median, p999 = summarize(x.p999).median;
        const bool has_ratio = is_cbuf ? fl != nullptr : cb != nullptr;  // --peers may leave out its reference
        char ratio_text[64] = "(not measured: --peers left out the reference)";
        if (has_ratio)
          std::snprintf(ratio_text, sizeof ratio_text, "%.2f [%.2f-%.2f]%s", rs.median, rs.lo, rs.hi,
                        is_cbuf ? " (vs floor)" : "");
        std::printf("%-6zu %-34s %10.0f %10.0f %10.0f  %s\n", bytes, x.peer->name.c_str(), p50, p99, p999, ratio_text);
        record({{"bench", "peer_latency"}, {"mode", mode}, {"bytes", bytes}, {"peer", x.peer->name},
                {"peer_id", x.peer->id}, {"p50_ns", p50}, {"p99_ns", p99}, {"p999_ns", p999},
                {"ratio_to", is_cbuf ? (fl ? fl->peer->name : floor) : "cbuf"}, {"ratio_median", rs.median},
                {"ratio_min", rs.lo}, {"ratio_max", rs.hi}, {"rounds", x.p50.size()}, {"messages", n}});
      }
    }
  }
}

void bench_peer_throughput(const std::vector<Peer>& peers, const std::vector<std::size_t>& sizes, int rounds,
                           bool quick) {
  std::printf("\n== Throughput, one producer and one polling consumer; ratio = cbuf / transport (memcpy: cbuf / memcpy)\n");
  for (const std::size_t bytes : sizes) {
    const std::uint64_t n = (bytes <= 64 ? 2'000'000ull : 250'000ull) / (quick ? 10 : 1);
    std::printf("%-6s %-34s %14s %8s %9s  %s\n", "bytes", "transport", "messages/s", "GB/s", "lost %",
                "ratio median [min-max]");
    std::vector<Peer> these;
    for (const Peer& p : peers)
      if (p.throughput) these.push_back(p);
    Peer ceiling;
    ceiling.id = "memcpy";
    ceiling.name = "memcpy (ceiling)";
    these.push_back(ceiling);
    auto res = rounds_over(these, rounds, [&](Result& x) {
      if (!x.peer->make) {
        x.rate.push_back(memcpy_rate(bytes, n));
        x.lost.push_back(0);
        return;
      }
      auto v = measure(*x.peer, [&] {
        auto ch = x.peer->make(bytes);
        const Delivery d = throughput_run(*ch, bytes, n);
        return std::vector<double>{d.msgs_per_s, static_cast<double>(d.lost)};
      });
      x.rate.push_back(v.at(0));
      x.lost.push_back(100.0 * v.at(1) / static_cast<double>(n));
    });
    const Result* cb = find(res, "cbuf");
    for (const Result& x : res) {
      if (!x.skipped.empty()) {
        print_skipped(x, "peer_throughput");
        continue;
      }
      const bool is_cbuf = &x == cb;
      const bool is_ceiling = !x.peer->make;
      const Stat rs = (cb && !is_cbuf) ? ratio(cb->rate, x.rate) : Stat{1, 1, 1};
      const double rate = summarize(x.rate).median, lost = summarize(x.lost).median;
      std::printf("%-6zu %-34s %14.3e %8.2f %9.2f  %.2f [%.2f-%.2f]\n", bytes, x.peer->name.c_str(), rate,
                  rate * static_cast<double>(bytes) / 1e9, lost, rs.median, rs.lo, rs.hi);
      record({{"bench", "peer_throughput"}, {"bytes", bytes}, {"peer", x.peer->name}, {"peer_id", x.peer->id},
              {"msgs_per_s", rate}, {"gb_per_s", rate * static_cast<double>(bytes) / 1e9}, {"lost_pct", lost},
              {"cbuf_ratio_median", rs.median}, {"cbuf_ratio_min", rs.lo}, {"cbuf_ratio_max", rs.hi},
              {"ceiling", is_ceiling}, {"rounds", x.rate.size()}, {"messages", n}});
    }
  }
}

}  // namespace bench
