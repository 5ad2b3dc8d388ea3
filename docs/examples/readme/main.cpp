// The README's C++ example as a program (README.md quotes it; tests/python/test_docs.py runs it with
// CBUF_DIR set to a temporary directory, then runs reader.py on the buffer it leaves).
#include <sensors.hpp>

#include <chrono>
#include <cstdio>
#include <optional>

namespace {

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void report(std::uint64_t first, std::uint64_t count) {
  std::printf("lost %llu rows from %llu\n", static_cast<unsigned long long>(count),
              static_cast<unsigned long long>(first));
}

}  // namespace

int main() try {
  sensors::Producer producer;                  // creates /dev/shm/sensors, 65536 rows (schema defaults);
                                             // run it again and it takes the buffer over (epoch 2)
  sensors::Row& row = producer.claim();        // zero-copy: fill the slot in place ...
  row.t = now_ns();
  row.channel[0] = 1.5f;
  producer.commit();                           // ... and publish it (or producer.write(row))

  sensors::Consumer consumer("sensors", cbuf::ConsumerOptions().follow(true));  // may start first; follows restarts
                                                                               // refuses a buffer of another schema
  std::optional<sensors::Row> newest = consumer.latest();
  sensors::Row batch[256];
  cbuf::Batch b = consumer.read_new(batch);    // rows [b.first, b.first + b.count) after the cursor
  if (b.lost) report(b.lost.first, b.lost.count);   // exactly which rows were overwritten before we got there
if (b.restart) report(b.restart.old_end, 0);       // the producer restarted: epoch old_epoch ended at old_end

  std::printf("newest channel[0] = %.1f, read %llu row(s) from %llu\n", newest ? newest->channel[0] : -1.0f,
              static_cast<unsigned long long>(b.count), static_cast<unsigned long long>(b.first));
  return newest && newest->channel[0] == 1.5f && b.count == 1 ? 0 : 1;
} catch (const cbuf::Error& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
