// cbuf/producer.hpp - creating a buffer and writing rows: untyped RawProducer, typed Producer<Row>.
//
// Design:
//   One producer per buffer. It builds the file unnamed, reserves all of its space, writes the header and the
//   schema, stores the magic last (release), and only then links the file at its name - so a consumer never
//   sees a half-initialised buffer. After that it writes rows through RingWriter (ring.hpp): no allocation, no
//   exception, no wait on any consumer, and no system call unless a consumer sleeps on the futex (wait.hpp's
//   wake_waiters after each publish). close() stores state = closed (release) and, if asked, unlinks the name.
//   Who decides what: MemoryPlan (memory_plan.hpp) the pages, mlock and prefaulting; take_over() whether an
//   existing file may be replaced; os::NewFile (os.hpp) how the file is made and linked.
#pragma once

#include <atomic>
#include <cassert>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

#include "cbuf/error.hpp"
#include "cbuf/format.hpp"
#include "cbuf/memory_plan.hpp"
#include "cbuf/options.hpp"
#include "cbuf/ring.hpp"
#include "cbuf/os.hpp"
#include "cbuf/state.hpp"
#include "cbuf/wait.hpp"

namespace cbuf {

class RawProducer {
 public:
  RawProducer(const ProducerOptions& opts, std::uint32_t row_size) {
    const std::string name = opts.name().empty() ? os::default_name() : opts.name();
    on_close_ = opts.on_close();
    std::string schema = opts.schema_json();
    if (schema.empty()) schema = default_schema(name, row_size);
    {  // never embed what readers refuse
      const std::string where = os::resolve(name, opts.dir()) + " (schema_json option)";
      detail::schema_columns(detail::parse_schema_json(schema, where), row_size, where);
    }
    const auto plan = detail::MemoryPlan::choose(name, opts);
    try {
      create(name, plan, opts, row_size, schema);
    } catch (const Error& e) {
      create(name, plan.after_failure(e), opts, row_size, schema);  // kTry on hugetlbfs: normal pages
    }
  }

  RawProducer(RawProducer&& o) noexcept { *this = std::move(o); }
  RawProducer& operator=(RawProducer&& o) noexcept {
    if (this != &o) {
      close_noexcept();
      path_ = std::move(o.path_);
      map_ = std::move(o.map_);
      fd_ = std::move(o.fd_);
      ring_ = o.ring_;
      capacity_ = o.capacity_;
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
  std::uint64_t capacity() const noexcept { return capacity_; }
  // Index the next write gets (= rows committed so far, counting from base_index).
  std::uint64_t next_index() const noexcept { return ring_.next_index(); }
  const MemoryReport& memory() const noexcept { return memory_; }
  bool is_open() const noexcept { return open_; }

  // Hot path: copy one row (row_size() bytes) in and publish it. Returns its index. Never throws, blocks or
  // allocates - except at the largest row index (kIndexLimit), which only a base_index or skip() from outside
  // can bring near: there the row is not written, and Errc::kIndexLimit says so (the same for the calls below).
  std::uint64_t write(const void* row) {
    assert(open_ && "write() on a closed producer");
    if (ring_.next_index() >= kIndexLimit) [[unlikely]] throw_index_limit(1);
    const std::uint64_t n = ring_.write(row);
    wake_waiters(header());  // one relaxed load unless a consumer sleeps (wait.hpp)
    return n;
  }
  // `count` rows back to back; the head is published once, after the last.
  std::uint64_t write_batch(const void* rows, std::size_t count) {
    assert(open_ && "write_batch() on a closed producer");
    if (count > kIndexLimit - ring_.next_index()) [[unlikely]] throw_index_limit(count);
    const std::uint64_t first = ring_.write_batch(rows, count);
    wake_waiters(header());
    return first;
  }
  // Marks the next `count` rows lost without writing them (readers report them lost, format 1.1): for relays
  // that keep their source's row indices. Returns the index the next write gets.
  std::uint64_t skip(std::uint64_t count) {
    assert(open_ && "skip() on a closed producer");
    if (count > kIndexLimit - ring_.next_index()) [[unlikely]] throw_index_limit(count);
    const std::uint64_t next = ring_.skip(count);
    wake_waiters(header());
    return next;
  }
  // Zero-copy: fill the returned bytes, then commit(). Readers see nothing of the row before commit().
  std::span<std::byte> claim() {
    assert(open_ && "claim() on a closed producer");
    if (ring_.next_index() >= kIndexLimit) [[unlikely]] throw_index_limit(1);
    return ring_.claim();
  }
  std::uint64_t commit() noexcept {
    const std::uint64_t n = ring_.commit();
    wake_waiters(header());
    return n;
  }

  // True once another process truncated the file under this producer. Rows written since went to private
  // zero pages that no reader sees (ProducerOptions::sigbus_guard); write() itself never checks - this does.
  bool truncated() const noexcept { return map_.truncated(); }

  // Marks the buffer closed for consumers and tools; unlinks the name if OnClose::kUnlink. Idempotent.
  // Throws Errc::kTruncated (after closing) if the file was truncated under the producer.
  void close() {
    if (!open_) return;
    open_ = false;
    Header* h = header();
    const HeaderWords words(h);
    words.closed_ns().store(os::realtime_ns(), std::memory_order_relaxed);  // published by the release below
    words.state().store(static_cast<std::uint32_t>(State::kClosed), std::memory_order_release);
    const bool was_truncated = truncated();  // after the header stores: they fault too if the file shrank
    // Release the single-writer lock explicitly: the mapping holds the open file description (and so the
    // lock) until it is unmapped, and readers may keep reading what the buffer holds meanwhile.
    if (fd_) os::unlock(fd_.get());
    fd_.reset();
    if (const int err = on_close_ == OnClose::kUnlink ? os::unlink_path(path_) : 0; err != 0 && err != ENOENT)
      throw Error(os::errc_for(err), path_, "cannot unlink at close: " + detail::errno_text(err));
    if (was_truncated)
      throw Error(Errc::kTruncated, path_,
                  "the file was truncated by another process while this producer wrote it; rows written since were "
                  "lost to every reader - find what truncated it, then restart the producer");
  }

 private:
  Header* header() const noexcept { return reinterpret_cast<Header*>(map_.data()); }

  // Out of line, so that the hot path keeps only the comparison (and stays small enough to inline).
  [[noreturn, gnu::cold, gnu::noinline]] void throw_index_limit(std::uint64_t rows) const {
    throw Error(Errc::kIndexLimit, path_,
                std::to_string(rows) + " more row(s) from index " + std::to_string(ring_.next_index()) +
                    " would pass the largest row index " + std::to_string(kIndexLimit - 1) +
                    " (docs/format.md section 1); start a new buffer with a lower base_index");
  }

  // A buffer this producer may replace (IfExists::kReplace): locked so no producer can take it meanwhile.
  struct Replaced {
    os::Fd fd;
    os::Mapping header_page;
    std::uint64_t epoch = 0;
  };

  // Locks the buffer at `path` for replacement, or returns nullopt if the name is free. The lock alone is not
  // enough: a producer that opened the file just before another one replaced it could lock the old, unlinked
  // file once the other let go - so after locking, the name must still hold the locked file, else start over.
  std::optional<Replaced> take_over(const std::string& path) const {
    for (int attempt = 0;; ++attempt) {
      const auto st = os::stat_path(path);
      if (!st) return std::nullopt;  // nothing to replace
      auto refuse = [&](Errc code, const std::string& why) {
        return Error(code, path, "already exists and " + why + "; " + os::exists_fix(path));
      };
      if (!st->regular) throw refuse(Errc::kExists, "is not a regular file, so it is not replaced");
      if (st->owner != os::effective_uid())
        throw refuse(Errc::kPermission, "belongs to uid " + std::to_string(st->owner) + ": cbuf replaces only its own user's buffers");
      Replaced r;
      r.fd = os::open_read_write(path);
      const auto opened = r.fd ? os::stat_fd(r.fd.get()) : std::nullopt;
      if (!opened || opened->size < kHeaderSize)
        throw refuse(Errc::kExists, "is not a cbuf buffer, so it is not replaced");
      r.header_page = os::map(r.fd.get(), kHeaderSize, path, {.writable = true});
      const auto* h = reinterpret_cast<const Header*>(r.header_page.data());
      if (HeaderWords(h).magic().load(std::memory_order_acquire) != kMagic)
        throw refuse(Errc::kExists, "is not a cbuf buffer, so it is not replaced");
      if (!os::try_lock_exclusive(r.fd.get()))
        throw Error(Errc::kExists, path, detail::describe_holder(path) + " its producer is live: stop it first (cbuf never replaces a live buffer)");
      const auto [dev, ino] = os::identity_at(path);
      if (dev == opened->dev && ino == opened->ino) {
        r.epoch = h->epoch;
        return r;
      }
      if (attempt == 8)  // the name keeps changing under us: another producer is taking it over right now
        throw Error(Errc::kExists, path, "is being replaced by another producer right now; retry");
    }
  }

  void create(const std::string& name, const detail::MemoryPlan& plan, const ProducerOptions& opts,
              std::uint32_t row_size, const std::string& schema) {
    path_ = os::resolve(name, plan.dir());
    if (opts.base_index() > kIndexLimit)
      throw Error(Errc::kInvalidArgument, path_,
                  "base_index " + std::to_string(opts.base_index()) + " is beyond the largest row index " +
                      std::to_string(kIndexLimit - 1) + " (docs/format.md section 1); use a smaller one");
    Layout l = plan_layout(path_, opts.capacity(), row_size, schema.size(), plan.alignment());
    l.page_size = plan.page_size();
    std::optional<Replaced> old;
    if (opts.if_exists() == IfExists::kReplace) old = take_over(path_);
    try {
      os::NewFile file(path_, opts.mode(), old.has_value());
      file.reserve(l.file_size);
      map_ = os::map(file.fd(), l.file_size, path_,
                      {.writable = true, .guard = opts.sigbus_guard(), .granularity = static_cast<std::size_t>(l.page_size)});
      const std::uint32_t mem_flags = plan.apply(map_, path_);
      memory_ = detail::MemoryPlan::report(mem_flags, l.page_size);
      init_header(l, schema, opts, old ? old->epoch + 1 : 1, mem_flags);
      os::try_lock_exclusive(file.fd());  // a fresh file: always ours; held until close() or process death
      file.link();                         // the name appears only now, fully initialised
      fd_ = file.release_fd();
    } catch (const Error& e) {
      map_.reset();
      if (e.code() == Errc::kExists && !old) throw exists_error(opts);
      throw;
    }
    if (old) {  // consumers of the old file learn it was replaced, and can re-attach by name
      HeaderWords(reinterpret_cast<const Header*>(old->header_page.data()))
          .state()
          .store(static_cast<std::uint32_t>(State::kReplaced), std::memory_order_release);
    }
    ring_ = RingWriter(header(), map_.data() + l.data_offset, l, opts.base_index());
    capacity_ = l.capacity;
    open_ = true;
  }

  // The name was taken while this producer, not asked to replace, created its file: who holds it, and how to go on.
  Error exists_error(const ProducerOptions& opts) const {
    std::optional<ProducerState> state;
    const std::string holder = detail::describe_holder(path_, &state);
    if (state == ProducerState::kLive)  // removing the file would not help: its producer is running
      return Error(Errc::kExists, path_, holder + " its producer is live: stop it first, or choose another name");
    return Error(Errc::kExists, path_,
                 holder + " " + os::exists_fix(path_) + ", or let this producer replace a closed or dead buffer (" +
                     opts.replace_hint() + ")");
  }

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

  void init_header(const Layout& l, const std::string& schema, const ProducerOptions& opts, std::uint64_t epoch,
                   std::uint32_t mem_flags) {
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
    h->mem_flags = mem_flags;
    h->producer_pid = os::current_pid();
    h->producer_start_time = os::process_start_time(static_cast<pid_t>(h->producer_pid)).value_or(0);
    h->epoch = epoch;
    h->created_ns = os::realtime_ns();
    h->state = static_cast<std::uint32_t>(State::kLive);
    h->head = opts.base_index();
    std::memcpy(map_.data() + l.schema_offset, schema.data(), schema.size());
    // Release: everything above happens-before any reader's acquire load that sees the magic.
    HeaderWords(h).magic().store(kMagic, std::memory_order_release);
  }

  std::string path_;
  os::Mapping map_;
  os::Fd fd_;  // holds the single-writer flock
  RingWriter ring_;
  OnClose on_close_ = OnClose::kKeep;
  MemoryReport memory_;
  std::uint64_t capacity_ = 0;
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

  std::uint64_t write(const Row& row) { return raw_.write(&row); }
  std::uint64_t write_batch(std::span<const Row> rows) { return raw_.write_batch(rows.data(), rows.size()); }
  std::uint64_t skip(std::uint64_t count) { return raw_.skip(count); }
  // Zero-copy: returns the next row in place (value-initialised only if you do it); commit() publishes it.
  Row& claim() { return *reinterpret_cast<Row*>(raw_.claim().data()); }
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
