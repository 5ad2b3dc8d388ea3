// cbuf/consumer.hpp - attaching to a buffer (validated) and reading it: untyped RawConsumer, typed Consumer<Row>.
//
// A consumer treats the file as untrusted: it refuses anything but a regular file, maps it read-only, waits a
// bounded time for the header to be published, checks every size and offset against the file size before
// touching the schema or the slots, and parses the schema JSON with size and depth limits. It reads the header
// once, into a private copy, and takes every size, offset and identity field from that copy only; afterwards it
// reads nothing from shared memory but the head, the state, the wait words and the slots, and every read goes
// through the seqlock protocol (ring.hpp), so nothing it returns as valid is torn or stale. A file truncated
// under the mapping ends in Errc::kTruncated from the next call, not in SIGBUS (ConsumerOptions::sigbus_guard).
//
// RawConsumer is the one owner of the read path's whole operations: the ring cursor (RingReader: validated
// reads, seek, the lap rule), pacing (Pacer), following restarts and the count of rows lost. Bindings call
// these operations; they do not reassemble them.
//
// Threads: the const calls (head, latest, last, read, rows, state) may run concurrently from any number
// of threads. The cursor calls (try_next, read_new, seek*, wait, reattach) change the consumer: one thread at a
// time, or a consumer per thread (they are cheap: one mapping each). Following a restart (read_new, try_next)
// replaces the consumer's mapping in place: a consumer that follows is used by one thread at a time.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include "cbuf/detail/schema_json.hpp"
#include "cbuf/error.hpp"
#include "cbuf/format.hpp"
#include "cbuf/options.hpp"
#include "cbuf/pacing.hpp"
#include "cbuf/ring.hpp"
#include "cbuf/os.hpp"
#include "cbuf/state.hpp"
#include "cbuf/wait.hpp"

namespace cbuf {

class RawConsumer {
 public:
  explicit RawConsumer(const std::string& name_or_path, const ConsumerOptions& opts = {})
      : RawConsumer(name_or_path, opts, std::chrono::steady_clock::now() + opts.attach_timeout(),
                    opts.wait_live() ? os::realtime_ns() : 0) {
    if (opts.wait_live()) wait_until_live(name_or_path, std::chrono::steady_clock::now() + opts.attach_timeout());
  }

 private:
  // ConsumerOptions::wait_live: while the name holds a buffer that was closed or dead before this consumer began
  // attaching (an earlier run's), re-attach whenever it holds another file (a new producer replaced it). A
  // buffer made since counts even if its producer has already closed it: that short run is the new run.
  void wait_until_live(const std::string& name_or_path, std::chrono::steady_clock::time_point deadline) {
    while (state() != ProducerState::kLive && header_.created_ns < began_ns_) {
      if (std::chrono::steady_clock::now() >= deadline) {
        const std::string what(to_string(state()));
        throw Error(Errc::kNotLive, path_,
                    "holds a " + what + " buffer (epoch " + std::to_string(epoch()) + ") and no live producer " +
                        "replaced it within the attach timeout; start the producer, or wait longer");
      }
      if (state_word() == State::kReplaced || name_moved(false)) {
        try {
          *this = RawConsumer(name_or_path, opts_, deadline, began_ns_);
          continue;
        } catch (const Error& e) {  // the name is between two files: look again
          if (e.code() != Errc::kNotFound && e.code() != Errc::kNotPublished) throw;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  RawConsumer(const std::string& name_or_path, const ConsumerOptions& opts, std::chrono::steady_clock::time_point deadline,
              std::uint64_t began_ns = 0)
      : path_(os::resolve_waiting(name_or_path, opts.dir(), deadline)), opts_(opts), began_ns_(began_ns) {
    os::OpenedFile f = open_file(opts.attach_timeout());
    if (f.size == 0)
      throw Error(Errc::kEmptyFile, path_, "is empty, not a cbuf buffer; remove it if it is left over (rm " + path_ + ")");
    if (f.size < kHeaderSize)
      throw Error(Errc::kTruncated, path_,
                  "is " + std::to_string(f.size) + " bytes, shorter than the " + std::to_string(kHeaderSize) +
                      "-byte cbuf header; it is not a cbuf buffer or was truncated");
    map_ = std::make_shared<os::Mapping>(
        os::map(f.fd.get(), f.size, path_, {.populate = opts.prefault(), .guard = opts.sigbus_guard(), .granularity = f.page}));
    dev_ = f.dev;
    ino_ = f.ino;
    fault_ = &map_->fault_flag();
    shared_ = reinterpret_cast<const Header*>(map_->data());
    // The header is read once, into header_, and only that copy is validated and used: another process may
    // rewrite the shared one at any time (docs/format.md, "What a reader trusts").
    wait_published(deadline, opts.attach_timeout());
    seqlock::load_payload(reinterpret_cast<std::byte*>(&header_), map_->data(), kHeaderSize);
    check_intact();
    layout_ = validate_header(header_, f.size, path_);
    schema_json_.assign(reinterpret_cast<const char*>(map_->data() + layout_.schema_offset), layout_.schema_size);
    check_intact();
    schema_ = detail::parse_schema_json(schema_json_, path_);
    columns_ = detail::schema_columns(schema_, layout_.row_size, path_);
    if (auto it = schema_.find("name"); it != schema_.end() && it->is_string()) schema_name_ = it->get<std::string>();
    ring_ = RingReader(shared_, map_->data() + layout_.data_offset, layout_, header_.base_index);
    ring_.poll_head(opts.poll() == Poll::kHead);
    pacer_.set(opts.pace());
    switch (opts.start()) {
      case Start::kOldest: ring_.seek_oldest(); break;
      case Start::kNewest: ring_.seek_newest(); break;
      case Start::kEnd: ring_.seek_end(); break;
      case Start::kIndex: ring_.seek(opts.start_index()); break;
    }
    check_intact();
  }

 public:
  RawConsumer(RawConsumer&&) noexcept = default;
  RawConsumer& operator=(RawConsumer&&) noexcept = default;

  const std::string& path() const noexcept { return path_; }
  const Layout& layout() const noexcept { return layout_; }
  std::uint32_t row_size() const noexcept { return layout_.row_size; }
  std::uint64_t capacity() const noexcept { return layout_.capacity; }
  const std::string& schema_json() const noexcept { return schema_json_; }
  const nlohmann::json& schema() const noexcept { return schema_; }
  // The schema's columns, validated against the row (detail::schema_columns).
  const std::vector<detail::ColumnLayout>& columns() const noexcept { return columns_; }
  const std::string& schema_name() const noexcept { return schema_name_; }
  std::uint64_t fingerprint() const noexcept { return header_.schema_fingerprint; }
  std::uint64_t base_index() const noexcept { return header_.base_index; }
  std::uint64_t epoch() const noexcept { return header_.epoch; }
  std::uint32_t producer_pid() const noexcept { return header_.producer_pid; }
  std::uint32_t mem_flags() const noexcept { return header_.mem_flags; }
  // The header as read and validated at attach. Its mutable words (state, head, waiters) are that moment's.
  const Header& header() const noexcept { return header_; }
  // The header in shared memory, as it is now: any field may change under you. For tests and diagnostics.
  const Header& shared_header() const noexcept { return *shared_; }

  ProducerState state() const {
    // Acquire: pairs with the producer's release store of the state, so closed_ns is visible once we see kClosed.
    const std::uint32_t s = HeaderWords(shared_).state().load(std::memory_order_acquire);
    check_intact();
    return producer_state(s, header_.producer_pid, header_.producer_start_time);
  }
  // When the producer closed the buffer (CLOCK_REALTIME ns), 0 while it has not.
  std::uint64_t closed_ns() const {
    const HeaderWords words(shared_);
    words.state().load(std::memory_order_acquire);  // pairs with close(): closed_ns is stored before the state
    const std::uint64_t ns = words.closed_ns().load(std::memory_order_relaxed);
    check_intact();
    return ns;
  }

  // Validated reads; see RingReader for the exact contracts. Each throws Errc::kTruncated, discarding what it
  // read, once the file has shrunk under this reader (ConsumerOptions::sigbus_guard), and Errc::kCorruptHeader
  // when the head is outside [base_index, kIndexLimit] (no producer writes that: a damaged or forged header).
  std::uint64_t head() const { return checked(head_checked()); }
  std::uint64_t oldest() const { return checked(ring_.oldest(head_checked())); }
  ReadStatus read(std::uint64_t index, void* dst) const {
    head_checked();
    return checked(ring_.read(index, dst));
  }
  bool latest(void* dst, std::uint64_t* index = nullptr) const {
    head_checked();
    return checked(ring_.latest(dst, index));
  }
  Batch last(std::size_t n, void* dst) const {
    head_checked();
    return checked(ring_.last(n, dst));
  }
  // At most `max` rows (dst holds max * row_size bytes): the newest ones below min(b, head) when [a, b) holds more.
  Batch rows(std::uint64_t a, std::uint64_t b, void* dst, std::uint64_t max = ~std::uint64_t{0}) const {
    const std::uint64_t h = head_checked();
    if (b > a && b - a > max) {
      const std::uint64_t hi = std::min(b, h);
      if (hi > a && hi - a > max) a = hi - max;
      b = a + max;
    }
    return checked(ring_.rows(a, b, dst));
  }
  // One cursor step: the rows lost since the last step (if lapped), then the next row copied into dst.
  Next try_next(void* dst) {
    const Batch b = step(dst, 1);
    return Next{b.count == 1, b.first, b.lost, b.restart};
  }
  // Copies up to `max` consecutive rows from the cursor into dst (max * row_size bytes), after reporting the
  // rows lost before them (RingReader::read_new). A paced reader (ConsumerOptions::pace) returns nothing,
  // without touching the shared mapping, until its pause is over. Following (ConsumerOptions::follow), an
  // empty read of a buffer whose producer is gone moves to the buffer a new producer put at the name (see
  // reattach) and says so in Batch::restart.
  Batch read_new(void* dst, std::size_t max) { return step(dst, max); }
  // Rows reported lost since this consumer attached, across the restarts it followed.
  std::uint64_t lost_total() const noexcept { return lost_total_; }

  // Moves to the buffer the name holds now (a restarted producer's): a new mapping, header, schema and cursor
  // (at the new base index). Returns what changed; throws like the constructor if nothing attachable is there.
  // The rows of the old buffer not read yet are given up: follow() moves only once they are all read.
  Restart reattach() {
    RawConsumer next = successor();
    next.ring_.seek(next.base_index());
    const Restart r{epoch(), next.epoch(), ring_.cursor(), next.base_index(),
                    next.fingerprint() != fingerprint() || next.row_size() != row_size()};
    next.lost_total_ = lost_total_;  // lost since attaching, across epochs
    *this = std::move(next);
    return r;
  }

  std::uint64_t cursor() const noexcept { return ring_.cursor(); }
  // True while this reader is paced (ConsumerOptions::pace): it reads in batches, a pause behind the producer.
  bool paced() const noexcept { return pacer_.paced(); }
  // What pacing did since attaching (or the last reattach): catch-ups, pauses, rows read after pauses.
  const PacingStats& pacing() const noexcept { return pacer_.stats(); }
  void seek(std::uint64_t index) noexcept { ring_.seek(index); }
  void seek_oldest() { ring_.seek_oldest(); check_intact(); }
  void seek_newest() { ring_.seek_newest(); check_intact(); }
  void seek_end() { ring_.seek_end(); check_intact(); }
  // Waits until a row is available at the cursor (true) or the timeout passes (false). Never consumes a row.
  // kBlock sleeps on the buffer's futex when this process may write the file (it registers as a waiter on a
  // separate mapping of the header page); otherwise it backs off with short sleeps - blocking_wait_available().
  // A paced reader first sits out its pause (a few microseconds: spinning is cheaper than a sleep); a wait
  // longer than the pause ends pacing. Following (ConsumerOptions::follow), it also returns true once a new
  // producer holds the name (the next read_new moves to it).
  bool wait(std::chrono::nanoseconds timeout, Idle idle = Idle::kBlock) {
    const auto called = std::chrono::steady_clock::now();
    const auto until = std::min(pacer_.look_after(), called + timeout);
    auto start = called;
    while (pacer_.pausing() && start < until) {
      detail::cpu_relax();
      start = std::chrono::steady_clock::now();
    }
    const bool ready = wait_for(ring_.cursor(), timeout - (start - called), idle);
    pacer_.waited(std::chrono::steady_clock::now() - start);
    return ready;
  }
  bool blocking_wait_available() { return wait_header() != nullptr; }

  // True once the file shrank under this reader; every read then throws Errc::kTruncated.
  bool truncated() const noexcept { return map_->truncated() || wait_map_.truncated(); }
  // The mapping, shared: zero-copy views hold it so that it outlives the consumer and its reattach().
  std::shared_ptr<const os::Mapping> mapping() const noexcept { return map_; }

  // Not validated: may be torn or mid-write. For experts who accept that: the slot area (capacity slots of
  // slot_size bytes: the sequence word, then the row) and the row bytes of the slot that would hold `index`.
  std::span<const std::byte> slots() const noexcept { return ring_.slots(); }
  std::span<const std::byte> raw_row_unvalidated(std::uint64_t index) const noexcept {
    return ring_.raw_row_unvalidated(index);
  }

 private:
  // Waits until row `index` is committed (head > index) or the timeout passes; following, until a new producer
  // holds the name.
  bool wait_for(std::uint64_t index, std::chrono::nanoseconds timeout, Idle idle) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    Header* wh = idle == Idle::kBlock ? wait_header() : nullptr;
    for (;;) {
      // While the producer is live, its next row (or its replacement, which stores kReplaced) ends the wait.
      const bool ready = wait_until(wh, idle, deadline - std::chrono::steady_clock::now(), [this, index] {
        return index < ring_.head() || truncated() || (opts_.follow() && producer_gone());
      });
      check_intact();
      if (!ready || index < ring_.head() || !opts_.follow()) return ready;
      if (state_word() == State::kReplaced || name_moved(false)) return true;
      // Closed or dead and not restarted yet: sleep until something appears in the directory.
      os::DirWatch watch({os::parent_dir(path_)});
      if (name_moved(false)) return true;
      watch.wait(std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(100)));
      if (name_moved(false)) return true;
      if (std::chrono::steady_clock::now() >= deadline) return false;
    }
  }
  // read_new: the hot path inline (b stays in registers), what follows an empty read out of line.
  [[gnu::always_inline]] Batch step(void* dst, std::size_t max) {
    Batch b;
    if (pacer_.holding()) [[unlikely]] {
      b.first = b.lost.first = ring_.cursor();
      return b;
    }
    ring_.read_new(b, dst, max);
    check_fault();
    const std::uint64_t lost_first = b.lost.first;
    pacer_.after_look(b.count, static_cast<bool>(b.lost), max, [this, lost_first] { return ring_.head() - lost_first; });
    lost_total_ += b.lost.count;
    if (b.count == 0) [[unlikely]] {
      if (const Restart r = after_empty_read(static_cast<bool>(b.lost), max)) {
        b.restart = r;
        b.first = b.lost.first = ring_.cursor();
      }
    }
    return b;
  }
  // A corrupt head throws; following, a buffer whose producer is gone and whose rows were all read gives way to
  // the name's new one.
  [[gnu::noinline]] Restart after_empty_read(bool lost, std::size_t max) {
    if (ring_.saw_corrupt_head()) throw corrupt_head();
    return opts_.follow() && !lost && max != 0 ? follow_restart() : Restart{};
  }

  void check_intact() const {
    if (truncated())
      throw Error(Errc::kTruncated, path_,
                  "the file shrank under this reader: truncated by another process; nothing read since is "
                  "returned - re-attach once its producer has recreated the buffer");
  }
  // After a read: Errc::kTruncated if the main mapping faulted (the wait page is checked by wait()). One relaxed
  // load of a process-local word, see detail::range_faulted for why relaxed is enough.
  void check_fault() const {
    if (fault_->load(std::memory_order_relaxed) != 0) [[unlikely]] check_intact();
  }
  template <class T>
  T checked(T value) const {
    check_fault();
    return value;
  }
  // The head, or Errc::kCorruptHeader if it is out of range (the reads stay in range anyway: RingReader).
  std::uint64_t head_checked() const {
    const std::uint64_t h = ring_.head();
    if (h < base_index() || h > kIndexLimit) [[unlikely]] throw corrupt_head();
    return h;
  }
  [[gnu::cold]] Error corrupt_head() const {
    return Error(Errc::kCorruptHeader, path_,
                 "head " + std::to_string(ring_.head()) + " is outside [base_index " + std::to_string(base_index()) +
                     ", index limit " + std::to_string(kIndexLimit) + "]; the file is damaged or not written by "
                     "cbuf - recreate the buffer");
  }

  os::OpenedFile open_file(std::chrono::milliseconds waited) {
    try {
      return os::open_readonly(path_);
    } catch (const Error& e) {
      if (e.code() != Errc::kNotFound || waited.count() == 0) throw;
      throw Error(Errc::kNotFound, path_,
                  "no such buffer after waiting " + std::to_string(waited.count()) +
                      " ms for it to appear; check the name or path (cbuf ls lists the buffers), or start its "
                      "producer");
    }
  }

  State state_word() const noexcept {
    return static_cast<State>(HeaderWords(shared_).state().load(std::memory_order_acquire));
  }
  // The producer will not write this file again: replaced, closed, or (checked now and then) dead.
  bool producer_gone() const {
    const State s = state_word();
    if (s == State::kReplaced || s == State::kClosed) return true;
    const auto now = std::chrono::steady_clock::now();
    if (now < next_liveness_check_) return false;
    next_liveness_check_ = now + kFollowCheckPeriod;
    return !os::process_alive(header_.producer_pid, header_.producer_start_time);
  }
  // The name now holds another file than the one mapped (throttled: checked at most every kFollowCheckPeriod).
  bool name_moved(bool throttled = true) const {
    const auto now = std::chrono::steady_clock::now();
    if (throttled && now < next_name_check_) return false;
    next_name_check_ = now + kFollowCheckPeriod;
    const auto [dev, ino] = os::identity_at(path_);
    return ino != 0 && (dev != dev_ || ino != ino_);
  }
  // follow(): after an empty read. If the producer is gone, every row of its buffer has been read (or reported
  // lost), and a new buffer holds the name, move to it. While the producer is live this costs one load of the
  // state word (a line written only at close) and, every kFollowCheckPeriod, a liveness check.
  Restart follow_restart() {
    if (!producer_gone() || ring_.cursor() < ring_.head()) return {};
    if (state_word() != State::kReplaced && !name_moved()) return {};
    try {
      return reattach();
    } catch (const Error& e) {
      if (e.code() == Errc::kNotFound || e.code() == Errc::kNotPublished) return {};  // not there yet: later
      throw;
    }
  }
  static constexpr std::chrono::milliseconds kFollowCheckPeriod{20};

  // The buffer the name holds now, attached at once (throws like the constructor if nothing is there).
  RawConsumer successor() const {
    ConsumerOptions o = opts_;
    o.attach_timeout(std::chrono::milliseconds(0));
    o.wait_live(false);  // a successor is a new run by definition
    return RawConsumer(path_, o);
  }

  void wait_published(std::chrono::steady_clock::time_point deadline, std::chrono::milliseconds timeout) {
    auto magic = HeaderWords(shared_).magic();
    for (;;) {
      // Acquire: pairs with the producer's release store of the magic; every other header field and the
      // schema were written before it.
      const std::uint64_t m = magic.load(std::memory_order_acquire);
      check_intact();  // the file shrank between fstat and this load: the magic read as zero
      if (m == kMagic) return;
      if (m != 0)
        throw Error(Errc::kBadMagic, path_, "is not a cbuf buffer (wrong magic number); check the path");
      if (std::chrono::steady_clock::now() >= deadline)
        throw Error(Errc::kNotPublished, path_,
                    "header not published after " + std::to_string(timeout.count()) +
                        " ms: its producer is still creating it or died while doing so, or this is not a cbuf "
                        "file; retry, or remove the file if no producer owns it");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  // The header page mapped writable, for waiter registration only; nullptr if the file is not writable to us.
  Header* wait_header() {
    if (!wait_tried_) {
      wait_tried_ = true;
      wait_map_ = os::map_header_writable(path_, dev_, ino_, layout_.page_size, opts_.sigbus_guard());
    }
    return reinterpret_cast<Header*>(wait_map_.data());
  }

  std::string path_;
  ConsumerOptions opts_;
  std::uint64_t began_ns_ = 0;  // wait_live: when attaching began (CLOCK_REALTIME ns)
  std::shared_ptr<os::Mapping> map_;
  const std::atomic<std::uint32_t>* fault_ = nullptr;  // map_'s truncation flag (os::Mapping::fault_flag)
  os::Mapping wait_map_;
  bool wait_tried_ = false;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  const Header* shared_ = nullptr;  // the mapped header: only its mutable words are read after attach
  Header header_{};                 // the copy validated at attach: geometry and identity come from here
  Layout layout_;
  std::string schema_json_;
  nlohmann::json schema_;
  std::vector<detail::ColumnLayout> columns_;
  std::string schema_name_;
  RingReader ring_;
  Pacer pacer_;
  std::uint64_t lost_total_ = 0;  // rows reported lost since attaching (reattach carries it over)
  mutable std::chrono::steady_clock::time_point next_liveness_check_{};  // follow(): throttles /proc reads
  mutable std::chrono::steady_clock::time_point next_name_check_{};      // follow(): throttles lstat
};

template <class Row>
struct TypedNext {
  std::optional<Row> row;
  std::uint64_t index = 0;
  Gap lost;
  Restart restart;  // set on the step that moved to a new epoch (ConsumerOptions::follow)
  explicit operator bool() const noexcept { return row.has_value(); }  // while (auto next = c.try_next())
  const Row& operator*() const noexcept { return *row; }                // next->field, like the optional
  const Row* operator->() const noexcept { return &*row; }
};

template <class Row>
class Consumer {
  static_assert(std::is_trivially_copyable_v<Row>, "a row is copied as bytes: it must be trivially copyable");
  static_assert(alignof(Row) <= 8, "rows start 8 bytes into their slot: alignment above 8 is not supported");

 public:
  explicit Consumer(const std::string& name_or_path, const ConsumerOptions& opts = {}) : raw_(name_or_path, opts) {
    check_schema("");
  }

  RawConsumer& raw() noexcept { return raw_; }
  const RawConsumer& raw() const noexcept { return raw_; }
  const std::string& path() const noexcept { return raw_.path(); }
  std::uint64_t head() const { return raw_.head(); }
  std::uint64_t capacity() const noexcept { return raw_.capacity(); }
  ProducerState state() const { return raw_.state(); }

  std::optional<Row> latest() const {
    Row r;
    return raw_.latest(&r) ? std::optional<Row>(r) : std::nullopt;
  }
  ReadStatus read(std::uint64_t index, Row& out) const { return raw_.read(index, &out); }
  // Up to n newest rows, oldest first (all validated).
  std::vector<Row> last(std::size_t n) const {
    std::vector<Row> v(std::min<std::uint64_t>(n, raw_.capacity()));
    v.resize(raw_.last(v.size(), v.data()).count);
    return v;
  }
  TypedNext<Row> try_next() {
    Row r;
    const Next n = raw_.try_next(&r);
    if (n.restart) check_schema(restarted(n.restart));
    return TypedNext<Row>{n.has_row ? std::optional<Row>(r) : std::nullopt, n.index, n.lost, n.restart};
  }
  // Fills out[0, count) with consecutive rows [first, first + count) after the cursor. Following a restart
  // into a buffer of another schema throws kSchemaMismatch naming the columns that differ.
  Batch read_new(std::span<Row> out) {
    Batch b = raw_.read_new(out.data(), out.size());
    if (b.restart) check_schema(restarted(b.restart));
    return b;
  }
  // Moves to the buffer the name holds now (RawConsumer::reattach), refusing one of another schema.
  Restart reattach() {
    const Restart r = raw_.reattach();
    check_schema(restarted(r));
    return r;
  }
  // Blocks until a row is ready at the cursor (true) or the timeout passes (false); see RawConsumer::wait.
  bool wait(std::chrono::nanoseconds timeout, Idle idle = Idle::kBlock) { return raw_.wait(timeout, idle); }
  std::uint64_t cursor() const noexcept { return raw_.cursor(); }
  void seek(std::uint64_t index) noexcept { raw_.seek(index); }

 private:
  static std::string restarted(const Restart& r) {
    return "after its producer restarted (epoch " + std::to_string(r.old_epoch) + " -> " + std::to_string(r.new_epoch) + "), ";
  }
  // Refuses a buffer of another schema than Row's, naming the columns that differ.
  void check_schema(const std::string& when) const {
    if constexpr (SchemaRow<Row>) {
      if (raw_.fingerprint() == Row::kFingerprint && raw_.row_size() == sizeof(Row)) return;
      std::string changes;
      try {
        const auto mine = detail::schema_columns(detail::parse_schema_json(Row::kSchemaJson, ""), sizeof(Row), "");
        changes = detail::describe_column_changes(mine, raw_.columns());
      } catch (const Error&) {  // a hand-written Row whose schema has no offsets: no column comparison
      }
      throw Error(Errc::kSchemaMismatch, raw_.path(),
                  when + "holds schema '" + raw_.schema_name() + "' (fingerprint " + hex(raw_.fingerprint()) + ", " +
                      std::to_string(raw_.row_size()) + "-byte rows) but this consumer was generated for '" +
                      std::string(Row::kSchemaName) + "' (fingerprint " + hex(Row::kFingerprint) + ", " +
                      std::to_string(sizeof(Row)) + "-byte rows)" + (changes.empty() ? "" : ": " + changes) +
                      "; attach to the right buffer or regenerate");
    } else if (raw_.row_size() != sizeof(Row)) {
      throw Error(Errc::kSchemaMismatch, raw_.path(),
                  when + "row_size is " + std::to_string(raw_.row_size()) + " bytes but this consumer's row type is " +
                      std::to_string(sizeof(Row)) + " bytes; attach with the matching row type");
    }
  }
  static std::string hex(std::uint64_t v) {
    char buf[19];
    std::snprintf(buf, sizeof buf, "0x%016llx", static_cast<unsigned long long>(v));
    return buf;
  }
  RawConsumer raw_;
};

}  // namespace cbuf
