// cbuf/producer.hpp - creating a buffer and writing rows: untyped RawProducer, typed Producer<Row>.
//
// Design:
//   One producer per buffer. It builds the file unnamed, reserves all of its space, writes the header and the
//   schema, stores the magic last (release), and only then links the file at its name - so a consumer never
//   sees a half-initialised buffer. After that it writes rows through RingWriter (ring.hpp): no system call,
//   no allocation, no exception, no wait on any consumer. close() stores state = closed (release) and, if
//   asked, unlinks the name.
#pragma once

#include <atomic>
#include <cassert>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

#include "cbuf/consumer.hpp"
#include "cbuf/error.hpp"
#include "cbuf/format.hpp"
#include "cbuf/options.hpp"
#include "cbuf/ring.hpp"
#include "cbuf/shm.hpp"

namespace cbuf {

// What the producer actually got from the OS (the request may have been "try").
struct MemoryReport {
  bool mlocked = false;
  std::uint64_t page_size = 0;
};

class RawProducer {
 public:
  RawProducer(const ProducerOptions& opts, std::uint32_t row_size) {
    const std::string name = opts.name().empty() ? shm::default_name() : opts.name();
    path_ = shm::resolve(name, opts.dir());
    on_close_ = opts.on_close();
    std::string schema = opts.schema_json();
    if (schema.empty()) schema = default_schema(name, row_size);
    detail::parse_schema_json(schema, path_ + " (schema_json option)");  // never embed what readers refuse
    const std::uint64_t page = shm::page_size();
    const Layout l = plan_layout(path_, opts.capacity(), row_size, schema.size(), page);

    try {
      shm::NewFile file(path_, opts.mode());
      file.reserve(l.file_size);
      map_ = shm::map(file.fd(), l.file_size, /*writable=*/true, path_);
      if (opts.mlock() != Feature::kOff) {
        const int err = shm::lock(map_);
        if (err == 0) memory_.mlocked = true;
        else if (opts.mlock() == Feature::kRequire) throw Error(Errc::kResource, path_, shm::mlock_fix(l.file_size));
      }
      memory_.page_size = page;
      init_header(l, schema, opts);
      file.link();  // the name appears only now, fully initialised
    } catch (const Error& e) {
      map_.reset();
      if (e.code() == Errc::kExists) throw Error(Errc::kExists, path_, describe_existing());
      throw;
    }
    ring_ = RingWriter(header(), map_.data() + l.data_offset);
    open_ = true;
  }

  RawProducer(RawProducer&& o) noexcept { *this = std::move(o); }
  RawProducer& operator=(RawProducer&& o) noexcept {
    if (this != &o) {
      close_noexcept();
      path_ = std::move(o.path_);
      map_ = std::move(o.map_);
      ring_ = o.ring_;
      on_close_ = o.on_close_;
      memory_ = o.memory_;
      open_ = std::exchange(o.open_, false);
    }
    return *this;
  }
  RawProducer(const RawProducer&) = delete;
  RawProducer& operator=(const RawProducer&) = delete;
  ~RawProducer() { close_noexcept(); }

  const std::string& path() const noexcept { return path_; }
  std::uint32_t row_size() const noexcept { return ring_.row_size(); }
  std::uint64_t capacity() const noexcept { return header()->capacity; }
  // Index the next write gets (= rows committed so far, counting from base_index).
  std::uint64_t next_index() const noexcept { return ring_.next_index(); }
  const MemoryReport& memory() const noexcept { return memory_; }
  bool is_open() const noexcept { return open_; }

  // Hot path: copy one row (row_size() bytes) in and publish it. Returns its index.
  std::uint64_t write(const void* row) noexcept {
    assert(open_ && "write() on a closed producer");
    return ring_.write(row);
  }
  // `count` rows back to back; the head is published once, after the last.
  std::uint64_t write_batch(const void* rows, std::size_t count) noexcept {
    assert(open_ && "write_batch() on a closed producer");
    return ring_.write_batch(rows, count);
  }
  // Zero-copy: fill the returned bytes, then commit(). Readers see nothing of the row before commit().
  std::span<std::byte> claim() noexcept {
    assert(open_ && "claim() on a closed producer");
    return ring_.claim();
  }
  std::uint64_t commit() noexcept { return ring_.commit(); }

  // Marks the buffer closed for consumers and tools; unlinks the name if OnClose::kUnlink. Idempotent.
  void close() {
    if (!open_) return;
    open_ = false;
    Header* h = header();
    h->closed_ns = shm::realtime_ns();  // published by the release store below
    detail::state_ref(h).store(static_cast<std::uint32_t>(State::kClosed), std::memory_order_release);
    if (on_close_ == OnClose::kUnlink && ::unlink(path_.c_str()) != 0 && errno != ENOENT)
      throw Error(shm::errc_for(errno), path_, "cannot unlink at close: " + detail::errno_text(errno));
  }

 private:
  Header* header() const noexcept { return reinterpret_cast<Header*>(map_.data()); }

  void close_noexcept() noexcept {
    try {
      close();
    } catch (...) {  // a destructor must not throw; the state is already "closed"
    }
  }

  // Without a schema, the row is described as raw bytes, so generic readers can still decode it.
  static std::string default_schema(const std::string& name, std::uint32_t row_size) {
    std::string n;
    for (char c : name) n += (c == '"' || c == '\\') ? '_' : c;
    const std::string size = std::to_string(row_size);
    return R"({"name":")" + n + R"(","row_size":)" + size + R"(,"columns":[{"name":"data","type":"uint8[)" + size +
           R"(]","offset":0}]})";
  }

  void init_header(const Layout& l, const std::string& schema, const ProducerOptions& opts) {
    // The file is fresh from posix_fallocate: every byte is zero, so reserved fields need no clearing.
    Header* h = header();
    h->version_major = kFormatMajor;
    h->version_minor = kFormatMinor;
    h->header_size = kHeaderSize;
    h->file_size = l.file_size;
    h->data_offset = l.data_offset;
    h->capacity = l.capacity;
    h->slot_size = l.slot_size;
    h->row_size = l.row_size;
    h->schema_offset = l.schema_offset;
    h->schema_size = l.schema_size;
    h->schema_fingerprint = opts.fingerprint();
    h->base_index = opts.base_index();
    h->page_size = l.page_size;
    h->mem_flags = memory_.mlocked ? kMemMlocked : 0;
    h->producer_pid = static_cast<std::uint32_t>(::getpid());
    h->producer_start_time = shm::process_start_time(::getpid()).value_or(0);
    h->epoch = 1;
    h->created_ns = shm::realtime_ns();
    h->state = static_cast<std::uint32_t>(State::kLive);
    h->head = opts.base_index();
    std::memcpy(map_.data() + l.schema_offset, schema.data(), schema.size());
    // Release: everything above happens-before any reader's acquire load that sees the magic.
    std::atomic_ref<std::uint64_t>(h->magic).store(kMagic, std::memory_order_release);
  }

  // "exists" message naming who holds the name, when it is a readable cbuf buffer.
  std::string describe_existing() const {
    std::string holder;
    try {
      ConsumerOptions co;
      co.attach_timeout(std::chrono::milliseconds(0));
      RawConsumer c(path_, co);
      holder = ", held by producer pid " + std::to_string(c.producer_pid()) + " (" + std::string(to_string(c.state())) +
               ", epoch " + std::to_string(c.epoch()) + ", schema '" + c.schema_name() + "')";
    } catch (const Error&) {
    }
    return "already exists" + holder + "; " + shm::exists_fix(path_);
  }

  std::string path_;
  shm::Mapping map_;
  RingWriter ring_;
  OnClose on_close_ = OnClose::kKeep;
  MemoryReport memory_;
  bool open_ = false;
};

// ---------------------------------------------------------------------------------------------------------
template <class Row>
class Producer {
  static_assert(std::is_trivially_copyable_v<Row>, "a row is copied as bytes: it must be trivially copyable");
  static_assert(alignof(Row) <= 8, "rows start 8 bytes into their slot: alignment above 8 is not supported");

 public:
  explicit Producer(ProducerOptions opts = {}) : raw_(with_schema(std::move(opts)), sizeof(Row)) {}

  const std::string& path() const noexcept { return raw_.path(); }
  std::uint64_t capacity() const noexcept { return raw_.capacity(); }
  std::uint64_t next_index() const noexcept { return raw_.next_index(); }
  const MemoryReport& memory() const noexcept { return raw_.memory(); }
  RawProducer& raw() noexcept { return raw_; }

  std::uint64_t write(const Row& row) noexcept { return raw_.write(&row); }
  std::uint64_t write_batch(std::span<const Row> rows) noexcept { return raw_.write_batch(rows.data(), rows.size()); }
  // Zero-copy: returns the next row in place (value-initialised only if you do it); commit() publishes it.
  Row& claim() noexcept { return *reinterpret_cast<Row*>(raw_.claim().data()); }
  std::uint64_t commit() noexcept { return raw_.commit(); }
  void close() { raw_.close(); }

 private:
  static ProducerOptions with_schema(ProducerOptions o) {
    if constexpr (SchemaRow<Row>) {
      o.schema_json(std::string(Row::kSchemaJson));
      o.fingerprint(Row::kFingerprint);
    }
    return o;
  }
  RawProducer raw_;
};

}  // namespace cbuf
