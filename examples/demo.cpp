// cbuf demo: a producer writes a 16-channel sensor stream with timestamps for a few seconds, restarting once
// half way (as a real producer process would: close, then a new producer takes the name over - epoch 2); two
// consumer processes attach by path and follow the restart - one keeps up, one is deliberately slow and is
// told exactly what it lost.
//
//   cbuf_demo [seconds] [name]
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <thread>

#include <demo_sensor.hpp>  // generated from demo_sensor.json by add_cbuf_schema()

namespace {

using Sample = demo_sensor::Row;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int consume(const std::string& path, bool slow, double seconds) {
  // follow: when the producer restarts, finish its buffer and move to the new one (Batch::restart says so).
  demo_sensor::Consumer c(path, cbuf::ConsumerOptions().start_index(0).follow(true));
  Sample batch[512];
  std::uint64_t received = 0, lost = 0, gaps = 0, bad = 0, epoch_rows = 0, restarts = 0;
  bool accounted = true;  // received + lost = written, for every epoch
  double age_sum_us = 0;  // how old the newest row of each batch was when read
  std::uint64_t batches = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds + 5);
  for (;;) {
    const cbuf::Batch b = c.read_new(batch);
    if (b.restart) {  // the old epoch ended at b.restart.old_end: every row below it was received or lost
      accounted = accounted && epoch_rows == b.restart.old_end;
      epoch_rows = 0;
      ++restarts;
      continue;
    }
    if (b.lost) {
      lost += b.lost.count;
      ++gaps;
    }
    for (std::size_t i = 0; i < b.count; ++i) bad += batch[i].seq != b.first + i;
    if (b.count) {
      age_sum_us += static_cast<double>(now_ns() - batch[b.count - 1].t_ns) / 1e3;
      ++batches;
    }
    received += b.count;
    epoch_rows += b.lost.count + b.count;
    if (b.count == 0) {
      if (restarts == 1 && c.state() != cbuf::ProducerState::kLive && c.cursor() >= c.head()) break;
      if (std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    if (slow) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  accounted = accounted && epoch_rows == c.head();
  std::printf("  %-5s consumer (pid %d): received %llu rows, lost %llu in %llu gaps, %llu out of order, followed "
              "%llu restart, newest row %.0f us old when read\n",
              slow ? "slow" : "fast", static_cast<int>(::getpid()), static_cast<unsigned long long>(received),
              static_cast<unsigned long long>(lost), static_cast<unsigned long long>(gaps),
              static_cast<unsigned long long>(bad), static_cast<unsigned long long>(restarts),
              batches ? age_sum_us / static_cast<double>(batches) : 0.0);
  return accounted && restarts == 1 && bad == 0 ? 0 : 1;
}

// Writes ~1 kHz bursts of 64 samples per channel scan for `seconds`; returns the rows written.
std::uint64_t produce(demo_sensor::Producer& producer, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  std::uint64_t n = 0;
  while (std::chrono::steady_clock::now() < end) {
    for (int burst = 0; burst < 64; ++burst, ++n) {
      Sample& s = producer.claim();
      s.t_ns = now_ns();
      s.seq = n;
      for (int ch = 0; ch < 16; ++ch) s.channel[ch] = static_cast<float>(std::sin(0.001 * static_cast<double>(n) + ch));
      std::snprintf(s.status.data(), s.status.size(), "%s", "OK");
      producer.commit();
    }
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
  const std::string name = argc > 2 ? argv[2] : "";  // default: cbuf_<pid>_<n>
  try {
    // Default name cbuf_<pid>_<n> (several demos may run at once); capacity from the schema. The first run keeps
    // the file at close, so the restarted producer takes it over (the default) as epoch 2.
    std::optional<demo_sensor::Producer> producer(std::in_place, demo_sensor::default_options().name(name));
    const std::string path = producer->path();
    std::printf("cbuf demo: producer pid %d writes 16-channel samples to %s for %.1f s, restarting half way\n",
                static_cast<int>(::getpid()), path.c_str(), seconds);
    std::fflush(stdout);
    pid_t children[2];
    for (int k = 0; k < 2; ++k) {
      children[k] = ::fork();
      if (children[k] == 0) {
        int rc = 1;  // the child must never unwind into the producer's destructor (it would close the buffer)
        try {
          rc = consume(path, k == 1, seconds);
        } catch (const cbuf::Error& e) {
          std::fprintf(stderr, "consumer: %s\n", e.what());
        }
        std::fflush(stdout);
        std::_Exit(rc);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let both attach

    const auto start = std::chrono::steady_clock::now();
    std::uint64_t n = produce(*producer, seconds / 2);
    producer->close();
    std::printf("  producer: epoch 1 wrote %llu rows, closed; restarting\n", static_cast<unsigned long long>(n));
    std::fflush(stdout);
    producer.emplace(demo_sensor::default_options().name(path).on_close(cbuf::OnClose::kUnlink));  // epoch 2
    n += produce(*producer, seconds / 2);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    producer->close();
    std::printf("  producer: wrote %llu rows in %.2f s (%.0f rows/s) over 2 epochs, closed\n",
                static_cast<unsigned long long>(n), elapsed, static_cast<double>(n) / elapsed);
    std::fflush(stdout);
    int failures = 0;
    for (pid_t child : children) {
      int status = 0;
      ::waitpid(child, &status, 0);
      failures += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    std::printf("cbuf demo: %s\n", failures ? "FAILED: a consumer's accounting did not add up" : "every row accounted for (received + lost = written)");
    return failures ? 1 : 0;
  } catch (const cbuf::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
