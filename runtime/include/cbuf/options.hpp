// cbuf/options.hpp - builder-style options for producers and consumers.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace cbuf {

// Three levels for optional OS features: off; try (fall back and report what was used); require (fail).
enum class Feature : std::uint8_t { kOff, kTry, kRequire };

// What happens to the buffer file when the producer closes (or is destroyed).
//  kKeep:   the file stays, marked closed; consumers keep reading what it holds, tools show it as closed, and
//           the name stays taken until someone removes it (rm, or `cbuf gc`).
//  kUnlink: the name is removed at close; consumers already attached keep their mapping until they detach.
// A producer that dies without closing leaves the file in place whatever this says; its state then reads "dead".
enum class OnClose : std::uint8_t { kKeep, kUnlink };

// When the buffer's name is taken.
//  kReplace: if the holder is not live (closed or dead), put a new buffer in its place (epoch + 1); the old
//            file's consumers see state "replaced" and can re-attach by name (ConsumerOptions::follow). A live
//            holder is never replaced, and a file that is not a cbuf buffer of this user, or a symlink, is never
//            touched. The default: restarting a producer just works.
//  kFail:    refuse with Errc::kExists, naming the holder.
enum class IfExists : std::uint8_t { kFail, kReplace };

class ProducerOptions {
 public:
  // Buffer name (one path component, placed in dir()), or a path if it contains '/'. Default cbuf_<pid>_<n>.
  ProducerOptions& name(std::string v) { name_ = std::move(v); return *this; }
  // Directory for a bare name. Default $CBUF_DIR, else /dev/shm.
  ProducerOptions& dir(std::string v) { dir_ = std::move(v); return *this; }
  // Rows kept (slots). Default 1024.
  ProducerOptions& capacity(std::uint64_t v) { capacity_ = v; return *this; }
  // File mode, applied exactly whatever the umask. Default 0600 (owner only); 0640 for a reader group.
  ProducerOptions& mode(mode_t v) { mode_ = v; return *this; }
  ProducerOptions& on_close(OnClose v) { on_close_ = v; return *this; }
  // Lock the mapping in RAM (mlock). Default off.
  ProducerOptions& mlock(Feature v) { mlock_ = v; return *this; }
  // Huge pages: a hugetlbfs mount (hugetlbfs_dir, default the first one in /proc/mounts), else transparent
  // huge pages on tmpfs where the system allows them. Default off.
  ProducerOptions& huge_pages(Feature v) { huge_pages_ = v; return *this; }
  ProducerOptions& hugetlbfs_dir(std::string v) { hugetlbfs_dir_ = std::move(v); return *this; }
  // Touch every page at creation, so the first writes do not page-fault. Default off.
  ProducerOptions& prefault(bool v) { prefault_ = v; return *this; }
  ProducerOptions& if_exists(IfExists v) { if_exists_ = v; return *this; }
  // How the caller's users ask for a replacement, quoted by "already exists" errors under kFail: tools set their
  // own flag ("--replace"). Default "IfExists::kReplace".
  ProducerOptions& replace_hint(std::string v) { replace_hint_ = std::move(v); return *this; }
  // Schema JSON embedded in the file (verbatim) and its fingerprint. Typed producers fill both.
  ProducerOptions& schema_json(std::string v) { schema_json_ = std::move(v); return *this; }
  ProducerOptions& fingerprint(std::uint64_t v) { fingerprint_ = v; return *this; }
  // Index of the first row written (head starts here). Default 0.
  ProducerOptions& base_index(std::uint64_t v) { base_index_ = v; return *this; }
  // Survive another process truncating the file: a SIGBUS inside the mapping is absorbed (a zero page is
  // mapped over the faulting page) and reported by close() and truncated(), never a crash. Default on; turn
  // it off in programs that handle SIGBUS themselves (SIGBUS elsewhere always reaches their handler).
  ProducerOptions& sigbus_guard(bool v) { sigbus_guard_ = v; return *this; }

  const std::string& name() const { return name_; }
  const std::string& dir() const { return dir_; }
  std::uint64_t capacity() const { return capacity_; }
  mode_t mode() const { return mode_; }
  OnClose on_close() const { return on_close_; }
  Feature mlock() const { return mlock_; }
  const std::string& schema_json() const { return schema_json_; }
  std::uint64_t fingerprint() const { return fingerprint_; }
  std::uint64_t base_index() const { return base_index_; }
  Feature huge_pages() const { return huge_pages_; }
  const std::string& hugetlbfs_dir() const { return hugetlbfs_dir_; }
  bool prefault() const { return prefault_; }
  IfExists if_exists() const { return if_exists_; }
  const std::string& replace_hint() const { return replace_hint_; }
  bool sigbus_guard() const { return sigbus_guard_; }

 private:
  std::string name_, dir_, schema_json_, hugetlbfs_dir_;
  Feature huge_pages_ = Feature::kOff;
  bool prefault_ = false;
  IfExists if_exists_ = IfExists::kReplace;
  std::string replace_hint_ = "IfExists::kReplace";
  std::uint64_t capacity_ = 1024;
  mode_t mode_ = 0600;
  OnClose on_close_ = OnClose::kKeep;
  Feature mlock_ = Feature::kOff;
  std::uint64_t fingerprint_ = 0;
  std::uint64_t base_index_ = 0;
  bool sigbus_guard_ = true;
};

// Where a new consumer's cursor starts.
enum class Start : std::uint8_t {
  kOldest,  // the oldest row still in the buffer
  kNewest,  // the newest committed row (then everything after it)
  kEnd,     // only rows written after attaching
  kIndex,   // ConsumerOptions::start_index (rows before the oldest valid one are reported lost)
};

// What a cursor that has caught up with the producer polls.
//  kSlot: the sequence word of the next row's slot - a new row is seen after one cache-line transfer, the
//         lowest latency. A reader spinning at the producer's heels touches the very line being written, which
//         slows the producer; pacing (ConsumerOptions::pace) keeps readers off its heels while it streams.
//  kHead: the head - one transfer more per new row, but the producer's slot lines are left alone until the
//         row is complete. For busy-spinning readers of a fast producer.
enum class Poll : std::uint8_t { kSlot, kHead };

// The pause of a paced reader (ConsumerOptions::pace).
inline constexpr std::chrono::nanoseconds kDefaultPace = std::chrono::microseconds(5);

class ConsumerOptions {
 public:
  ConsumerOptions& poll(Poll v) { poll_ = v; return *this; }
  Poll poll() const { return poll_; }
  // Pacing: a reader that keeps finding new rows the moment it catches up (a producer faster than its polls)
  // leaves the ring alone for this long after catching up, then reads what gathered in one batch - so that it
  // does not slow the producer by taking its cache lines row by row. Rows reach it up to `pace` later while
  // that lasts; a request/reply exchange or a slower producer is never paced. 0 turns pacing off.
  // Default kDefaultPace (5 us). docs/tuning.md, "Many readers".
  ConsumerOptions& pace(std::chrono::nanoseconds v) { pace_ = v; return *this; }
  std::chrono::nanoseconds pace() const { return pace_; }
  ConsumerOptions& dir(std::string v) { dir_ = std::move(v); return *this; }
  ConsumerOptions& start(Start v) { start_ = v; return *this; }
  ConsumerOptions& start_index(std::uint64_t v) { start_ = Start::kIndex; start_index_ = v; return *this; }
  // How long attaching waits for the buffer: for its name to appear (a consumer may start before its producer;
  // inotify wakes it when the file is linked) and for its header to be published. Then kNotFound or
  // kNotPublished. Default 1 s.
  ConsumerOptions& attach_timeout(std::chrono::milliseconds v) { attach_timeout_ = v; return *this; }
  // Follow the producer across restarts: when the buffer is replaced by a new producer of the same name (a new
  // epoch), or its name comes to hold a new buffer after a close, the consumer finishes the old one and moves
  // to the new one; the batch that moves reports it (Batch::restart). Default off (RawConsumer::reattach() does
  // it on request).
  ConsumerOptions& follow(bool v) { follow_ = v; return *this; }
  bool follow() const { return follow_; }
  // Attach only to a buffer whose producer is live: a closed or dead buffer left at the name by an earlier run
  // is passed over, and attaching waits (within attach_timeout) for a producer to replace it - then
  // Errc::kNotLive. For a consumer started before its producer, which would otherwise read the last run's
  // rows and stop. Default off.
  ConsumerOptions& wait_live(bool v) { wait_live_ = v; return *this; }
  bool wait_live() const { return wait_live_; }
  // Map the whole file into this process's page tables at attach (MAP_POPULATE), so that the first pass over
  // the ring takes no page faults (each costs microseconds: the tail of a latency-sensitive reader).
  ConsumerOptions& prefault(bool v) { prefault_ = v; return *this; }
  bool prefault() const { return prefault_; }
  // Survive another process truncating the file: reads past the new end see zeros (never a valid row), and
  // the call in progress and every later one throw Errc::kTruncated instead of the process dying of SIGBUS.
  // Default on; turn it off in programs that handle SIGBUS themselves.
  ConsumerOptions& sigbus_guard(bool v) { sigbus_guard_ = v; return *this; }
  bool sigbus_guard() const { return sigbus_guard_; }

  const std::string& dir() const { return dir_; }
  Start start() const { return start_; }
  std::uint64_t start_index() const { return start_index_; }
  std::chrono::milliseconds attach_timeout() const { return attach_timeout_; }

 private:
  std::string dir_;
  Start start_ = Start::kOldest;
  std::uint64_t start_index_ = 0;
  std::chrono::milliseconds attach_timeout_{1000};
  Poll poll_ = Poll::kSlot;
  std::chrono::nanoseconds pace_ = kDefaultPace;
  bool prefault_ = false;
  bool sigbus_guard_ = true;
  bool follow_ = false;
  bool wait_live_ = false;
};

}  // namespace cbuf
