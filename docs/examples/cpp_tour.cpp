// The C++ API, one call at a time: every snippet in docs/cpp-api.md is taken from this file (a test checks
// that they still match), and a test builds and runs it against schema/examples/sensors.json.
//
//   cpp_tour DIR      creates its buffers in DIR, prints what it does, exits 0 when every step behaved
#include <cstdio>
#include <string>
#include <vector>

#include <sensors.hpp>

namespace {

int g_failures = 0;
void expect(bool ok, const char* what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++g_failures;
}

std::int64_t now_ns() { return static_cast<std::int64_t>(std::chrono::system_clock::now().time_since_epoch().count()); }

void producer_options(const std::string& dir) {
  // [producer-options]
  sensors::Producer producer(sensors::default_options()  // the schema's name ("sensors") and capacity
                                 .dir(dir)                   // default: $CBUF_DIR, else /dev/shm
                                 .capacity(4096)             // rows kept
                                 .mode(0640)                 // readable by the group
                                 .on_close(cbuf::OnClose::kUnlink)
                                 .mlock(cbuf::Feature::kTry)  // lock in RAM if the limit allows
                                 .prefault(true));            // no page faults on the first lap
  std::printf("buffer %s, mlocked: %s\n", producer.path().c_str(), producer.memory().mlocked ? "yes" : "no");
  // [/producer-options]
  expect(producer.capacity() == 4096, "capacity option");
}

void write_and_read(const std::string& dir) {
  sensors::Producer producer(sensors::default_options().dir(dir).capacity(8).on_close(cbuf::OnClose::kUnlink));
  sensors::Consumer consumer(producer.path());  // the full path: this buffer is not in /dev/shm

  // [write]
  sensors::Row row{};
  row.t = now_ns();
  row.channel[0] = 1.5f;
  cbuf::set_string(row.label, "run-7");
  std::uint64_t index = producer.write(row);  // copies the row in; returns its index

  sensors::Row& slot = producer.claim();  // or fill the slot in place (zero-copy) ...
  slot.t = now_ns();
  slot.seq = index + 1;
  producer.commit();                      // ... and publish it

  std::vector<sensors::Row> rows(3);
  producer.write_batch(rows);  // several rows, one head update
  // [/write]
  expect(producer.next_index() == 5, "write, claim/commit and write_batch gave 5 rows");

  // [read]
  std::optional<sensors::Row> newest = consumer.latest();  // the newest row, or nullopt before the first
  std::vector<sensors::Row> recent = consumer.last(100);   // up to 100 newest rows, oldest first

  sensors::Row one;
  switch (consumer.read(1, one)) {  // one row by index
    case cbuf::ReadStatus::kOk: break;
    case cbuf::ReadStatus::kNotYet: break;       // not written yet
    case cbuf::ReadStatus::kOverwritten: break;  // lapped: gone for good
    case cbuf::ReadStatus::kBeforeBase: break;   // before the buffer's first index
  }
  // [/read]
  expect(newest && newest->seq == 0 && recent.size() == 5 && one.seq == 1, "latest, last and read");
  sensors::Row first;
  expect(consumer.read(0, first) == cbuf::ReadStatus::kOk && cbuf::get_string(first.label) == "run-7",
         "set_string / get_string");

  // [cursor]
  producer.write_batch(std::vector<sensors::Row>(20));  // 20 more rows: the 8-row ring laps the cursor
  sensors::Row batch[4];
  cbuf::Batch b = consumer.read_new(batch);  // rows [b.first, b.first + b.count) after the cursor
  if (b.lost)                                // exactly which rows were overwritten before we got there
    std::printf("lost rows %llu..%llu\n", static_cast<unsigned long long>(b.lost.first),
                static_cast<unsigned long long>(b.lost.first + b.lost.count - 1));
  while (auto next = consumer.try_next()) {  // or one row at a time
    // next.row is the row, next.index its index, next.lost the rows lost just before it
  }
  // [/cursor]
  expect(b.first == 17 && b.count == 4 && b.lost.first == 0 && b.lost.count == 17, "read_new reports the loss");
  expect(consumer.cursor() == 25, "try_next drained the rest");
}

void waiting(const std::string& dir) {
  sensors::Producer producer(sensors::default_options().dir(dir).name("waiting").on_close(cbuf::OnClose::kUnlink));
  sensors::Consumer consumer(producer.path(), cbuf::ConsumerOptions().start(cbuf::Start::kEnd));
  producer.write(sensors::Row{});
  // [wait]
  using namespace std::chrono_literals;
  if (consumer.wait(100ms)) {  // sleeps on a futex until a row is ready at the cursor (true), or times out
    sensors::Row r[64];
    consumer.read_new(r);
  }
  consumer.wait(100ms, cbuf::Idle::kBusySpin);  // or spin: the lowest latency, one core busy
  // [/wait]
  expect(consumer.cursor() == 1, "wait then read_new");
  // [state]
  switch (consumer.state()) {
    case cbuf::ProducerState::kLive: break;      // writing (or able to)
    case cbuf::ProducerState::kClosed: break;    // closed cleanly: no more rows will come
    case cbuf::ProducerState::kDead: break;      // the process died without closing
    case cbuf::ProducerState::kReplaced: break;  // a new producer took the name: reattach
  }
  // [/state]
  producer.close();
  expect(consumer.state() == cbuf::ProducerState::kClosed, "state after close");
}

void errors(const std::string& dir) {
  // [errors]
  try {
    sensors::Consumer consumer("no_such_buffer", cbuf::ConsumerOptions().dir(dir));
  } catch (const cbuf::Error& e) {
    // e.code() is a cbuf::Errc (kNotFound here); e.what() names the path and says what to do.
    std::fprintf(stderr, "%s\n", e.what());
  }
  // [/errors]
  try {
    sensors::Consumer consumer("no_such_buffer", cbuf::ConsumerOptions().dir(dir));
    expect(false, "a missing buffer is refused");
  } catch (const cbuf::Error& e) {
    expect(e.code() == cbuf::Errc::kNotFound, "a missing buffer is refused with kNotFound");
  }
}

void raw_rows(const std::string& dir) {
  // [raw]
  cbuf::RawProducer raw(cbuf::ProducerOptions().dir(dir).name("raw").capacity(1024).on_close(cbuf::OnClose::kUnlink),
                        /*row_size=*/24);
  const std::byte bytes[24] = {};
  raw.write(bytes);
  cbuf::RawConsumer reader(raw.path());
  std::byte out[24];
  cbuf::Next n = reader.try_next(out);  // n.has_row, n.index, n.lost
  // [/raw]
  expect(n.has_row && n.index == 0 && reader.row_size() == 24, "raw producer and consumer");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  try {
    producer_options(dir);
    write_and_read(dir);
    waiting(dir);
    errors(dir);
    raw_rows(dir);
  } catch (const cbuf::Error& e) {
    std::fprintf(stderr, "unexpected: %s\n", e.what());
    return 1;
  }
  return g_failures == 0 ? 0 : 1;
}
