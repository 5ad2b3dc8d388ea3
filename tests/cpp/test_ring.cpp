// Single-threaded contract tests for producers and consumers over real buffer files.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <vector>

#include "common.hpp"

using namespace cbuf;
using cbuf_test::CheckedRow;
using cbuf_test::TempDir;

namespace {
struct Sample {
  std::uint64_t i;
  double x;
};
ProducerOptions opts_in(const TempDir& d, const std::string& name, std::uint64_t capacity) {
  return ProducerOptions().dir(d.path()).name(name).capacity(capacity);
}
}  // namespace

TEST_CASE("producer: creates a published, self-describing file at dir/name", "[ring]") {
  TempDir d;
  Producer<Sample> p(opts_in(d, "s", 8).schema_json(R"({"name":"sample","columns":[]})").fingerprint(0xabcdef));
  CHECK(p.path() == d / "s");
  RawConsumer c("s", ConsumerOptions().dir(d.path()));
  CHECK(c.capacity() == 8);
  CHECK(c.row_size() == sizeof(Sample));
  CHECK(c.layout().slot_size == 24);
  CHECK(c.schema_name() == "sample");
  CHECK(c.schema_json() == R"({"name":"sample","columns":[]})");
  CHECK(c.fingerprint() == 0xabcdef);
  CHECK(c.epoch() == 1);
  CHECK(c.producer_pid() == static_cast<std::uint32_t>(::getpid()));
  CHECK(c.state() == ProducerState::kLive);
  CHECK(c.head() == 0);
  CHECK_FALSE(Consumer<Sample>(p.path()).latest().has_value());
}

TEST_CASE("producer: default name cbuf_<pid>_<n> in $CBUF_DIR, and a default schema", "[ring]") {
  TempDir d;
  ::setenv("CBUF_DIR", d.path().c_str(), 1);
  Producer<Sample> a, b;
  ::unsetenv("CBUF_DIR");
  const std::string prefix = d.path() + "/cbuf_" + std::to_string(::getpid()) + "_";
  CHECK(a.path().rfind(prefix, 0) == 0);
  CHECK(b.path().rfind(prefix, 0) == 0);
  CHECK(a.path() != b.path());
  RawConsumer c(a.path());
  CHECK(c.schema()["columns"][0]["type"] == "uint8[16]");
}

TEST_CASE("producer: file mode is exact whatever the umask", "[ring]") {
  TempDir d;
  const mode_t old = ::umask(0077);
  Producer<Sample> p(opts_in(d, "m", 4).mode(0640));
  ::umask(old);
  struct stat st{};
  REQUIRE(::stat(p.path().c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0640);
  Producer<Sample> q(opts_in(d, "m2", 4));
  REQUIRE(::stat(q.path().c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
}

TEST_CASE("producer: space is reserved up front", "[ring]") {
  TempDir d;
  Producer<CheckedRow> p(opts_in(d, "r", 10000));
  struct stat st{};
  REQUIRE(::stat(p.path().c_str(), &st) == 0);
  // Allocated blocks cover the whole file: no page is left to fault in (and fail) later.
  CHECK(static_cast<std::uint64_t>(st.st_blocks) * 512 >= static_cast<std::uint64_t>(st.st_size));
}

TEST_CASE("write / read / latest / last, with wrap-around", "[ring]") {
  TempDir d;
  Producer<Sample> p(opts_in(d, "w", 4));
  Consumer<Sample> c(p.path());
  for (std::uint64_t i = 0; i < 3; ++i) CHECK(p.write({i, i * 1.5}) == i);
  CHECK(c.head() == 3);
  CHECK(c.latest()->i == 2);
  auto all = c.last(10);
  REQUIRE(all.size() == 3);
  CHECK((all[0].i == 0 && all[2].i == 2 && all[1].x == 1.5));

  for (std::uint64_t i = 3; i < 10; ++i) p.write({i, 0});  // wraps twice
  CHECK(c.head() == 10);
  CHECK(c.raw().oldest() == 6);
  auto tail = c.last(3);
  REQUIRE(tail.size() == 3);
  CHECK((tail[0].i == 7 && tail[1].i == 8 && tail[2].i == 9));
  CHECK(c.last(100).size() == 4);
  CHECK(c.last(0).empty());

  Sample s{};
  CHECK(c.read(9, s) == ReadStatus::kOk);
  CHECK(s.i == 9);
  CHECK(c.read(6, s) == ReadStatus::kOk);
  CHECK(s.i == 6);
  CHECK(c.read(5, s) == ReadStatus::kOverwritten);
  CHECK(c.read(10, s) == ReadStatus::kNotYet);
}

TEST_CASE("claim / commit writes in place, readers see nothing before commit", "[ring]") {
  TempDir d;
  Producer<Sample> p(opts_in(d, "c", 4));
  Consumer<Sample> c(p.path());
  Sample& slot = p.claim();
  slot = {42, 4.2};
  CHECK(c.head() == 0);
  Sample s{};
  CHECK(c.read(0, s) == ReadStatus::kNotYet);
  CHECK(p.commit() == 0);
  CHECK(c.read(0, s) == ReadStatus::kOk);
  CHECK(s.i == 42);
  CHECK(s.x == 4.2);
}

TEST_CASE("write_batch publishes all rows with one head store", "[ring]") {
  TempDir d;
  Producer<Sample> p(opts_in(d, "b", 8));
  Consumer<Sample> c(p.path());
  std::vector<Sample> rows;
  for (std::uint64_t i = 0; i < 5; ++i) rows.push_back({i, 0});
  CHECK(p.write_batch(rows) == 0);
  CHECK(p.write_batch(rows) == 5);  // wraps
  CHECK(c.head() == 10);
  auto v = c.last(8);
  REQUIRE(v.size() == 8);
  CHECK((v.front().i == 2 && v.back().i == 4));  // rows 2..9 hold values rows[2..4], rows[0..4]
}

TEST_CASE("write_batch writes every row size the same way, across the ring's end and beyond a lap", "[ring]") {
  // Sizes up to 128 (multiples of 8) take the inlined copy, the others memcpy: all must write the same bytes.
  TempDir d;
  for (std::uint32_t size : {1u, 8u, 16u, 24u, 40u, 56u, 64u, 72u, 96u, 120u, 128u, 136u, 1024u}) {
    CAPTURE(size);
    RawProducer p(opts_in(d, "w" + std::to_string(size), 7), size);
    RawConsumer c(p.path());
    auto row_of = [size](std::uint64_t i) {
      std::vector<std::byte> r(size);
      for (std::uint32_t k = 0; k < size; ++k) r[k] = static_cast<std::byte>((i * 31 + k) & 0xff);
      return r;
    };
    std::uint64_t next = 0;
    for (std::size_t count : {3u, 5u, 1u, 7u, 12u}) {  // wraps, exactly a lap, more than a lap
      std::vector<std::byte> batch;
      for (std::size_t j = 0; j < count; ++j) {
        auto r = row_of(next + j);
        batch.insert(batch.end(), r.begin(), r.end());
      }
      CHECK(p.write_batch(batch.data(), count) == next);
      next += count;
      CHECK(c.head() == next);
      for (std::uint64_t i = next > 7 ? next - 7 : 0; i < next; ++i) {
        std::vector<std::byte> got(size);
        REQUIRE(c.read(i, got.data()) == ReadStatus::kOk);
        CHECK(got == row_of(i));
      }
    }
  }
}

TEST_CASE("cursor: in order, then exact loss when lapped, then resumes at the oldest valid row", "[ring]") {
  TempDir d;
  Producer<CheckedRow> p(opts_in(d, "cur", 4));
  Consumer<CheckedRow> c(p.path());
  CHECK(c.cursor() == 0);
  CHECK_FALSE(c.try_next().row.has_value());
  p.write(CheckedRow::make(0));
  p.write(CheckedRow::make(1));
  auto n = c.try_next();
  REQUIRE(n.row);
  CHECK((n.index == 0 && n.row->index == 0 && !n.lost));
  for (std::uint64_t i = 2; i < 12; ++i) p.write(CheckedRow::make(i));
  // Cursor at 1, head 12, capacity 4: rows 1..7 are gone, 8..11 remain.
  n = c.try_next();
  REQUIRE(n.row);
  CHECK(n.lost.first == 1);
  CHECK(n.lost.count == 7);
  CHECK(n.index == 8);
  CHECK(n.row->ok());
  CheckedRow out[8];
  Batch b = c.read_new(out);
  CHECK((b.first == 9 && b.count == 3 && !b.lost));
  CHECK((out[0].index == 9 && out[2].index == 11));
  b = c.read_new(out);
  CHECK((b.count == 0 && !b.lost && c.cursor() == 12));
}

TEST_CASE("a lapped cursor resumes at the oldest row, or past it when lapped again at once", "[ring]") {
  TempDir d;
  Producer<CheckedRow> p(opts_in(d, "lap", 64));
  Consumer<CheckedRow> c(p.path(), ConsumerOptions().start_index(40));  // below the valid range: lapped
  for (std::uint64_t i = 0; i < 164; ++i) p.write(CheckedRow::make(i));
  // Head 164, capacity 64: rows 100..163 are kept. A first lap resumes at the oldest, 100.
  CheckedRow out[16];
  Batch b = c.read_new(std::span(out, 2));
  CHECK((b.lost.first == 40 && b.lost.count == 60 && b.first == 100 && b.count == 2 && out[1].ok()));
  // Lapped again after only 2 rows, before getting 64/8 = 8 rows past 100: racing the producer. The cursor
  // resumes 8 rows past the oldest (row 236's slot is the producer's next), the skip counted as lost.
  for (std::uint64_t i = 164; i < 300; ++i) p.write(CheckedRow::make(i));
  b = c.read_new(std::span(out, 16));
  CHECK((b.lost.first == 102 && b.first == 244 && b.lost.end() == b.first && b.count == 16));
  // It got well past its resume point before the next lap: an ordinary lap again, at the oldest row.
  for (std::uint64_t i = 300; i < 500; ++i) p.write(CheckedRow::make(i));
  auto n = c.try_next();
  REQUIRE(n.row);
  CHECK((n.lost.first == 260 && n.index == 436 && n.row->index == 436 && n.lost.end() == n.index));
  // A seek forgets the race: the next lap resumes at the oldest row.
  c.seek(437);
  for (std::uint64_t i = 500; i < 600; ++i) p.write(CheckedRow::make(i));
  n = c.try_next();
  CHECK((n.row && n.index == 536 && n.lost.first == 437));
}

TEST_CASE("cursor with head polling: same rows, same loss reports", "[ring]") {
  TempDir d;
  Producer<CheckedRow> p(opts_in(d, "ph", 4));
  Consumer<CheckedRow> c(p.path(), ConsumerOptions().poll(Poll::kHead));
  CHECK_FALSE(c.try_next().row.has_value());
  p.write(CheckedRow::make(0));
  auto n = c.try_next();
  CHECK((n.row && n.index == 0));
  CHECK_FALSE(c.try_next().row.has_value());
  for (std::uint64_t i = 1; i < 10; ++i) p.write(CheckedRow::make(i));
  n = c.try_next();
  CHECK((n.row && n.index == 6 && n.lost.first == 1 && n.lost.count == 5));
}

TEST_CASE("cursor: batch reads are capped by the caller's buffer", "[ring]") {
  TempDir d;
  Producer<CheckedRow> p(opts_in(d, "cap", 64));
  Consumer<CheckedRow> c(p.path());
  for (std::uint64_t i = 0; i < 50; ++i) p.write(CheckedRow::make(i));
  CheckedRow out[16];
  cbuf_test::Ledger ledger;
  for (int k = 0; k < 4; ++k) {
    Batch b = c.read_new(out);
    ledger.account(b, out);
  }
  CHECK(ledger.received == 50);
  CHECK(ledger.lost == 0);
  CHECK(ledger.errors == 0);
}

TEST_CASE("cursor start positions: oldest, newest, end, index", "[ring]") {
  TempDir d;
  Producer<CheckedRow> p(opts_in(d, "start", 4));
  for (std::uint64_t i = 0; i < 10; ++i) p.write(CheckedRow::make(i));
  auto first_of = [&](ConsumerOptions o) {
    Consumer<CheckedRow> c(p.path(), o);
    auto n = c.try_next();
    return std::make_pair(n.row ? static_cast<std::int64_t>(n.index) : -1, n.lost);
  };
  CHECK(first_of(ConsumerOptions().start(Start::kOldest)).first == 6);
  CHECK(first_of(ConsumerOptions().start(Start::kNewest)).first == 9);
  CHECK(first_of(ConsumerOptions().start(Start::kEnd)).first == -1);
  auto [idx, lost] = first_of(ConsumerOptions().start_index(2));
  CHECK(idx == 6);
  CHECK((lost.first == 2 && lost.count == 4));
  CHECK(first_of(ConsumerOptions().start_index(8)).first == 8);
  // kEnd sees what comes next.
  Consumer<CheckedRow> c(p.path(), ConsumerOptions().start(Start::kEnd));
  p.write(CheckedRow::make(10));
  auto n = c.try_next();
  CHECK((n.row && n.index == 10 && !n.lost));
}

TEST_CASE("close marks the buffer closed, keep leaves the file, unlink removes it", "[ring]") {
  TempDir d;
  {
    Producer<Sample> p(opts_in(d, "keep", 4));
    p.write({1, 1});
    RawConsumer c(p.path());
    p.close();
    CHECK(c.state() == ProducerState::kClosed);
    CHECK(c.head() == 1);  // what the buffer holds stays readable
    Sample s{};
    CHECK(c.read(0, &s) == ReadStatus::kOk);
    p.close();  // idempotent
  }
  CHECK(std::filesystem::exists(d / "keep"));
  CHECK(RawConsumer(d / "keep").state() == ProducerState::kClosed);
  {
    Producer<Sample> p(opts_in(d, "gone", 4).on_close(OnClose::kUnlink));
    Consumer<Sample> c(p.path());
    p.write({7, 0});
  }  // destructor closes
  CHECK_FALSE(std::filesystem::exists(d / "gone"));
}

TEST_CASE("producer is move-only and the moved-to object owns the buffer", "[ring]") {
  static_assert(!std::is_copy_constructible_v<Producer<Sample>>);
  static_assert(std::is_nothrow_move_constructible_v<RawProducer>);
  TempDir d;
  Producer<Sample> a(opts_in(d, "mv", 4));
  Producer<Sample> b(std::move(a));
  b.write({3, 0});
  CHECK(Consumer<Sample>(b.path()).latest()->i == 3);
}

TEST_CASE("base_index: indices far from zero (2^32, just below the index limit) keep their meaning", "[ring]") {
  for (std::uint64_t base : {std::uint64_t{(1ull << 32) - 2}, std::uint64_t{kIndexLimit - 10}}) {
    INFO("base = " << base);
    TempDir d;
    Producer<CheckedRow> p(opts_in(d, "big", 4).base_index(base));
    Consumer<CheckedRow> c(p.path(), ConsumerOptions().start_index(base));
    for (std::uint64_t i = 0; i < 10; ++i) CHECK(p.write(CheckedRow::make(base + i)) == base + i);
    CHECK(c.head() == base + 10);
    auto n = c.try_next();
    REQUIRE(n.row);
    CHECK((n.lost.first == base && n.lost.count == 6 && n.index == base + 6 && n.row->index == base + 6));
    CheckedRow r{};
    CHECK(c.read(base + 9, r) == ReadStatus::kOk);
    CHECK(r.index == base + 9);
    CHECK(c.read(base - 1, r) == ReadStatus::kBeforeBase);
    CHECK(c.read(base + 5, r) == ReadStatus::kOverwritten);
    CHECK(c.last(2).back().index == base + 9);
  }
}

TEST_CASE("index limit: a producer stops at it, and no reader returns a row past it", "[ring][format]") {
  // Row n's sequence word is 2n+2: at n = 2^63-1 it would wrap to 0, "never written", and an all-zero slot
  // passed for that row. kIndexLimit keeps every index below the wrap (format.hpp, docs/format.md section 1).
  TempDir d;
  CHECK_THROWS_WITH(Producer<CheckedRow>(opts_in(d, "over", 8).base_index(kIndexLimit + 1)),
                    Catch::Matchers::Contains("beyond the largest row index"));
  Producer<CheckedRow> p(opts_in(d, "edge", 8).base_index(kIndexLimit - 4));
  Consumer<CheckedRow> c(p.path(), ConsumerOptions().start(Start::kOldest));
  for (std::uint64_t i = 0; i < 4; ++i) CHECK(p.write(CheckedRow::make(kIndexLimit - 4 + i)) == kIndexLimit - 4 + i);
  try {
    p.write(CheckedRow::make(kIndexLimit));
    FAIL("wrote past the index limit");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::kIndexLimit);
  }
  CHECK_THROWS_AS(p.skip(1), Error);
  CheckedRow batch[2] = {CheckedRow::make(0), CheckedRow::make(1)};
  CHECK_THROWS_AS(p.write_batch(batch), Error);
  CHECK_THROWS_AS(p.raw().claim(), Error);
  CHECK(p.next_index() == kIndexLimit);
  CheckedRow out[8];
  Batch b = c.read_new(out);
  CHECK((b.first == kIndexLimit - 4 && b.count == 4 && out[3].index == kIndexLimit - 1));
  for (int k = 0; k < 200; ++k) CHECK(c.read_new(out).count == 0);  // no phantom row at the limit
  CHECK(c.latest()->index == kIndexLimit - 1);
  CHECK(c.last(8).size() == 4);
  Producer<CheckedRow> s(opts_in(d, "skipper", 8).base_index(kIndexLimit - 4));
  CHECK_THROWS_AS(s.skip(5), Error);
  CHECK(s.skip(4) == kIndexLimit);
}

TEST_CASE("index limit: a forged head beyond it, or below base_index, is a corrupt header", "[ring][format]") {
  TempDir d;
  Producer<CheckedRow> p(opts_in(d, "forged", 8).base_index(100));
  for (std::uint64_t i = 0; i < 4; ++i) p.write(CheckedRow::make(100 + i));
  Consumer<CheckedRow> c(p.path(), ConsumerOptions().start(Start::kOldest));
  CheckedRow out[8];
  CHECK(c.read_new(out).count == 4);
  auto forge_head = [&](std::uint64_t v) {  // as another process would: through the file
    const int fd = ::open(p.path().c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    CHECK(::pwrite(fd, &v, sizeof v, offsetof(Header, head)) == sizeof v);
    ::close(fd);
  };
  for (std::uint64_t forged : {std::uint64_t{kIndexLimit + 1}, std::uint64_t{1ull << 63}, std::uint64_t{~0ull},
                                std::uint64_t{99}}) {
    INFO("head " << forged);
    forge_head(forged);
    auto code_of = [](auto&& f) -> std::optional<Errc> {
      try {
        f();
      } catch (const Error& e) {
        return e.code();
      }
      return std::nullopt;
    };
    CHECK(code_of([&] { c.latest(); }) == Errc::kCorruptHeader);
    CHECK(code_of([&] { c.last(4); }) == Errc::kCorruptHeader);
    CHECK(code_of([&] { c.raw().head(); }) == Errc::kCorruptHeader);
    CHECK(code_of([&] { c.raw().rows(100, 104, out); }) == Errc::kCorruptHeader);
    std::optional<Errc> got;
    for (int k = 0; k < 200 && !got; ++k)  // the cursor consults the head within kHeadCheckPeriod looks
      got = code_of([&] { (void)c.read_new(out); });
    CHECK(got == Errc::kCorruptHeader);
    c.raw().seek(104);
  }
  forge_head(104);
  CHECK(c.latest()->index == 103);
}

TEST_CASE("start below base_index: the rows below it are lost, so delivered + lost = end - start", "[ring][format]") {
  TempDir d;
  Producer<CheckedRow> p(opts_in(d, "below", 8).base_index(215));
  Consumer<CheckedRow> early(p.path(), ConsumerOptions().start_index(0));  // before anything is written
  CheckedRow out[8];
  Batch b = early.read_new(out);
  CHECK((b.count == 0 && b.lost.first == 0 && b.lost.count == 215));
  for (std::uint64_t i = 0; i < 3; ++i) p.write(CheckedRow::make(215 + i));
  Consumer<CheckedRow> late(p.path(), ConsumerOptions().start_index(10));
  b = late.read_new(out);
  CHECK((b.first == 215 && b.count == 3 && b.lost.first == 10 && b.lost.count == 205));
  b = early.read_new(out);
  CHECK((b.first == 215 && b.count == 3 && !b.lost));
}

TEST_CASE("raw unvalidated access exposes the slot bytes", "[ring]") {
  TempDir d;
  Producer<Sample> p(opts_in(d, "raw", 4));
  p.write({11, 0});
  RawConsumer c(p.path());
  auto bytes = c.raw_row_unvalidated(0);
  REQUIRE(bytes.size() == sizeof(Sample));
  Sample s;
  std::memcpy(&s, bytes.data(), sizeof s);
  CHECK(s.i == 11);
}

TEST_CASE("typed consumer refuses a buffer with another row size", "[ring]") {
  TempDir d;
  Producer<Sample> p(opts_in(d, "ty", 4));
  try {
    Consumer<CheckedRow> c(p.path());
    FAIL("attached with the wrong row type");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::kSchemaMismatch);
    CHECK(std::string(e.what()).find("16 bytes") != std::string::npos);
  }
}

namespace {
struct SchemaA {
  std::uint64_t v;
  static constexpr std::string_view kSchemaJson = R"({"name":"alpha","columns":[{"name":"v","type":"uint64","offset":0}]})";
  static constexpr std::string_view kSchemaName = "alpha";
  static constexpr std::uint64_t kFingerprint = 0x1111;
};
struct SchemaB {
  std::uint64_t v;
  static constexpr std::string_view kSchemaJson = R"({"name":"beta","columns":[{"name":"w","type":"uint64","offset":0}]})";
  static constexpr std::string_view kSchemaName = "beta";
  static constexpr std::uint64_t kFingerprint = 0x2222;
};
}  // namespace

TEST_CASE("typed consumer checks the schema fingerprint and names both schemas", "[ring]") {
  TempDir d;
  Producer<SchemaA> p(opts_in(d, "fp", 4));
  CHECK_NOTHROW(Consumer<SchemaA>(p.path()));
  try {
    Consumer<SchemaB> c(p.path());
    FAIL("attached with another schema");
  } catch (const Error& e) {
    const std::string w = e.what();
    CHECK(e.code() == Errc::kSchemaMismatch);
    CHECK(w.find("'alpha'") != std::string::npos);
    CHECK(w.find("'beta'") != std::string::npos);
    CHECK(w.find("0x0000000000001111") != std::string::npos);
    CHECK(w.find("0x0000000000002222") != std::string::npos);
  }
}

TEST_CASE("mlock: try reports what it got", "[ring]") {
  TempDir d;
  Producer<Sample> p(opts_in(d, "ml", 16).mlock(Feature::kTry));
  RawConsumer c(p.path());
  CHECK(((c.mem_flags() & kMemMlocked) != 0) == p.memory().mlocked);
  CHECK(c.header().page_size == os::page_size());
}

TEST_CASE("skip: rows marked lost by the producer are reported lost, exactly, by every read", "[ring]") {
  TempDir d;
  Producer<CheckedRow> p(opts_in(d, "skip", 16));
  Consumer<CheckedRow> c(p.path());
  Consumer<CheckedRow> stepper(p.path());
  for (std::uint64_t i = 0; i < 5; ++i) p.write(CheckedRow::make(i));
  CHECK(p.skip(3) == 8);
  CHECK(c.latest()->index == 4);  // skipped rows are not rows: the newest row written
  CheckedRow run[16];
  Batch newest = c.raw().last(3, run);  // the newest rows written, before the skipped ones
  CHECK((newest.first == 2 && newest.count == 3 && run[2].index == 4));
  newest = c.raw().rows(3, 8, run);  // the range's rows; a skipped row after them ends the run
  CHECK((newest.first == 3 && newest.count == 2));
  newest = c.raw().rows(5, 8, run);  // only skipped rows: none, and first says where the caller is
  CHECK(newest.count == 0);
  for (std::uint64_t i = 8; i < 10; ++i) CHECK(p.write(CheckedRow::make(i)) == i);
  CheckedRow out[16];
  Batch b = c.read_new(out);
  CHECK((b.first == 0 && b.count == 5 && !b.lost));
  b = c.read_new(out);
  CHECK((b.first == 8 && b.count == 2 && b.lost.first == 5 && b.lost.count == 3));
  CHECK((out[0].ok() && out[0].index == 8));
  std::uint64_t got = 0, lost = 0;
  for (int k = 0; k < 16; ++k) {
    auto n = stepper.try_next();
    lost += n.lost.count;
    if (n.row) {
      CHECK(n.row->ok());
      CHECK(n.row->index == n.index);
      ++got;
    }
  }
  CHECK((got == 7 && lost == 3));
  CHECK(c.raw().read(6, out) == ReadStatus::kOverwritten);
  CHECK(c.raw().read(8, out) == ReadStatus::kOk);
  CHECK(c.latest()->index == 9);
  b = c.raw().last(16, out);  // one consecutive run: the rows after the gap
  CHECK((b.first == 8 && b.count == 2));
}

TEST_CASE("skip: more rows than the ring holds move every cursor past them", "[ring]") {
  TempDir d;
  Producer<CheckedRow> p(opts_in(d, "skipmany", 4));
  Consumer<CheckedRow> c(p.path());
  p.write(CheckedRow::make(0));
  p.write(CheckedRow::make(1));
  CheckedRow out[4];
  CHECK(c.read_new(out).count == 2);
  CHECK(p.skip(1000) == 1002);
  CHECK(p.write(CheckedRow::make(1002)) == 1002);
  cbuf_test::Ledger ledger;
  ledger.expected = 2;
  for (int k = 0; k < 3; ++k) ledger.account(c.read_new(out), out);
  CHECK(ledger.received == 1);
  CHECK(ledger.lost == 1000);
  CHECK(ledger.errors == 0);
}
