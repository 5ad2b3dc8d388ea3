// OS features and robustness: single writer and the replace policy, liveness (pid reuse included), kill -9
// of producers and consumers, a full file system, mlock limits, huge pages, latency helpers.
// Tests that need root powers (mount, nr_hugepages, setuid) skip with the reason when they do not have them.
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <random>
#include <thread>

#include "common.hpp"

using namespace cbuf;
using namespace std::chrono_literals;
using cbuf_test::CheckedRow;
using cbuf_test::TempDir;

namespace {

ProducerOptions in(const TempDir& d, const std::string& name) {
  return ProducerOptions().dir(d.path()).name(name).capacity(64);
}

// Runs `body` in a child process and returns its exit status (128 + signal if killed).
template <class F>
int in_child(F&& body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    int rc = 99;
    try {
      rc = body();
    } catch (...) {
    }
    std::_Exit(rc);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  return {std::istreambuf_iterator<char>(f), {}};
}

// A directory where a scratch mount can live; unmounted and removed at the end.
struct ScratchMount {
  TempDir dir;
  bool mounted = false;
  ScratchMount(const char* type, const std::string& options) {
    mounted = ::mount("none", dir.path().c_str(), type, 0, options.c_str()) == 0;
  }
  ~ScratchMount() {
    if (mounted) ::umount2(dir.path().c_str(), MNT_DETACH);
  }
};

}  // namespace

TEST_CASE("single writer: a live buffer is never replaced, the refusal names the holder", "[os]") {
  TempDir d;
  Producer<std::uint64_t> live(in(d, "b"));
  try {
    Producer<std::uint64_t> second(in(d, "b").if_exists(IfExists::kReplace));
    FAIL("replaced a live buffer");
  } catch (const Error& e) {
    const std::string w = e.what();
    CHECK(e.code() == Errc::kExists);
    CHECK(w.find("pid " + std::to_string(::getpid())) != std::string::npos);
    CHECK(w.find("live") != std::string::npos);
  }
}

TEST_CASE("replace policy: a closed or dead buffer is replaced with a new epoch, old readers see it", "[os]") {
  TempDir d;
  std::optional<Producer<std::uint64_t>> first(std::in_place, in(d, "b"));
  first->write(1);
  RawConsumer old_reader(d / "b");
  CHECK_THROWS_AS(Producer<std::uint64_t>(in(d, "b")), Error);  // default policy: fail
  first->close();
  Producer<std::uint64_t> second(in(d, "b").if_exists(IfExists::kReplace));
  CHECK(old_reader.state() == ProducerState::kReplaced);
  RawConsumer new_reader(d / "b");
  CHECK(new_reader.epoch() == 2);
  CHECK(new_reader.head() == 0);
  CHECK(new_reader.state() == ProducerState::kLive);

  // A dead producer (exited without closing) is replaced too.
  second.close();
  REQUIRE(in_child([&] {
            Producer<std::uint64_t> p(in(d, "dead").if_exists(IfExists::kReplace));
            p.write(7);
            std::_Exit(0);  // no close: the file says live, the process is gone
            return 0;
          }) == 0);
  CHECK(RawConsumer(d / "dead").state() == ProducerState::kDead);
  Producer<std::uint64_t> third(in(d, "dead").if_exists(IfExists::kReplace));
  CHECK(RawConsumer(d / "dead").epoch() == 2);
}

TEST_CASE("replace policy never touches what is not this user's cbuf buffer", "[os]") {
  TempDir d;
  { std::ofstream(d / "plain") << "precious"; }
  CHECK_THROWS_AS(Producer<std::uint64_t>(in(d, "plain").if_exists(IfExists::kReplace)), Error);
  CHECK(read_file(d / "plain") == "precious");
  std::filesystem::create_symlink(d / "victim", d / "link");
  CHECK_THROWS_AS(Producer<std::uint64_t>(in(d, "link").if_exists(IfExists::kReplace)), Error);
  CHECK_FALSE(std::filesystem::exists(d / "victim"));
  if (::geteuid() == 0) {
    {
      Producer<std::uint64_t> p(in(d, "foreign").on_close(OnClose::kKeep));
    }
    REQUIRE(::chown((d / "foreign").c_str(), 65534, 65534) == 0);
    try {
      Producer<std::uint64_t> p(in(d, "foreign").if_exists(IfExists::kReplace));
      FAIL("replaced another user's file");
    } catch (const Error& e) {
      CHECK(e.code() == Errc::kPermission);
      CHECK(std::string(e.what()).find("uid 65534") != std::string::npos);
    }
    CHECK(RawConsumer(d / "foreign").epoch() == 1);
  }
}

TEST_CASE("liveness: pid reuse does not fool the dead-producer check", "[os]") {
  TempDir d;
  {
    Producer<std::uint64_t> p(in(d, "b"));
  }
  // Forge a "live" buffer whose pid is a running process (this one) but whose start time is another's.
  std::fstream f(d / "b", std::ios::in | std::ios::out | std::ios::binary);
  const std::uint32_t live = static_cast<std::uint32_t>(State::kLive);
  f.seekp(offsetof(Header, state));
  f.write(reinterpret_cast<const char*>(&live), 4);
  const std::uint64_t other_start = os::process_start_time(::getpid()).value() + 12345;
  f.seekp(offsetof(Header, producer_start_time));
  f.write(reinterpret_cast<const char*>(&other_start), 8);
  f.close();
  RawConsumer c(d / "b");
  CHECK(c.producer_pid() == static_cast<std::uint32_t>(::getpid()));
  CHECK(c.state() == ProducerState::kDead);
}

TEST_CASE("kill -9 of the producer at random points, 1000 times: no torn row, no hang, dead, taken over", "[os][fault]") {
  TempDir d;
  std::mt19937_64 rng(12345);
  std::uint64_t total_rows = 0;
  for (int round = 0; round < 1000; ++round) {
    INFO("round " << round);
    int ready_pipe[2];
    REQUIRE(::pipe(ready_pipe) == 0);
    const pid_t child = ::fork();
    if (child == 0) {
      ::close(ready_pipe[0]);
      try {
        Producer<CheckedRow> p(in(d, "k").capacity(32).if_exists(IfExists::kReplace));
        char c = 'r';
        if (::write(ready_pipe[1], &c, 1) != 1) std::_Exit(2);
        for (std::uint64_t i = 0;; ++i) {
          if (i % 2) {
            p.claim() = CheckedRow::make(i);
            p.commit();
          } else {
            p.write(CheckedRow::make(i));
          }
        }
      } catch (...) {
        std::_Exit(3);
      }
    }
    ::close(ready_pipe[1]);
    char c = 0;
    REQUIRE(::read(ready_pipe[0], &c, 1) == 1);  // the buffer exists (a fresh epoch)
    ::close(ready_pipe[0]);
    Consumer<CheckedRow> reader(d / "k", ConsumerOptions().start_index(0));
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    // Read everything left; a row cut mid-write is never returned, and reading ends.
    cbuf_test::Ledger ledger;
    CheckedRow buf[64];
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    for (;;) {
      const Batch b = reader.read_new(buf);
      ledger.account(b, buf);
      if (b.count == 0 && !b.lost && reader.cursor() >= reader.head()) break;
      REQUIRE(std::chrono::steady_clock::now() < deadline);
    }
    CHECK(ledger.errors == 0);
    // Every row up to the cursor was received or reported lost. The cursor may be one past the head: a row
    // whose sequence word was committed just before the kill (head not yet stored) is complete and valid.
    CHECK(ledger.received + ledger.lost == reader.cursor());
    CHECK(reader.cursor() >= reader.head());
    CHECK(reader.cursor() <= reader.head() + 1);
    CHECK(reader.state() == ProducerState::kDead);
    CHECK(reader.raw().epoch() == static_cast<std::uint64_t>(round + 1));
    total_rows += reader.head();
  }
  CHECK(total_rows > 0);
}

TEST_CASE("kill -9 of a blocked consumer affects nothing else", "[os][fault]") {
  TempDir d;
  Producer<std::uint64_t> p(in(d, "b").capacity(256));
  const pid_t child = ::fork();
  if (child == 0) {
    RawConsumer c(d / "b", ConsumerOptions().start(Start::kEnd));
    c.wait(60s, Idle::kBlock);
    std::_Exit(0);
  }
  RawConsumer other(d / "b", ConsumerOptions().start(Start::kEnd));
  // Wait until the child is asleep (it announced itself), then kill it.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::atomic_ref<std::uint32_t>(const_cast<Header&>(other.shared_header()).waiters).load() == 0)
    REQUIRE(std::chrono::steady_clock::now() < deadline);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  p.write(1);  // wakes nobody, and clears the stale flag
  CHECK(other.shared_header().waiters == 0);
  for (std::uint64_t i = 2; i <= 100; ++i) p.write(i);
  std::uint64_t v[128];
  const Batch b = other.read_new(v, 128);
  CHECK(b.count == 100);
  CHECK(other.shared_header().waiters == 0);
}

TEST_CASE("a full file system fails at creation with a clear error: no SIGBUS, no file left", "[os][fault]") {
  ScratchMount small("tmpfs", "size=1m,mode=0777");
  if (!small.mounted) CBUF_SKIP("cannot mount a small tmpfs here (needs root / CAP_SYS_ADMIN)");
  try {
    Producer<CheckedRow> p(ProducerOptions().dir(small.dir.path()).name("big").capacity(100000));  // ~7 MiB
    FAIL("created a buffer larger than the file system");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::kNoSpace);
    const std::string w = e.what();
    CHECK(w.find("cannot reserve") != std::string::npos);
    CHECK(w.find("df -h") != std::string::npos);
  }
  CHECK(std::filesystem::is_empty(small.dir.path()));
  // What fits is fully usable, up to the last slot.
  Producer<CheckedRow> p(ProducerOptions().dir(small.dir.path()).name("fits").capacity(8000));
  for (std::uint64_t i = 0; i < 8000; ++i) p.write(CheckedRow::make(i));
  CHECK(Consumer<CheckedRow>(p.path()).latest()->index == 7999);
}

TEST_CASE("mlock under a small RLIMIT_MEMLOCK: try reports the fallback, require fails clearly", "[os]") {
#if defined(CBUF_SANITIZED)
  CBUF_SKIP("sanitizer runtimes intercept mlock() as a no-op that succeeds, so limits cannot be observed");
#endif
  TempDir d;
  ::chmod(d.path().c_str(), 0777);
  if (::geteuid() == 0) {
    // Root bypasses RLIMIT_MEMLOCK (CAP_IPC_LOCK): test as an unprivileged user in a child.
    const int rc = in_child([&] {
      if (::setgid(65534) != 0 || ::setuid(65534) != 0) return 10;
      rlimit rl{64 << 10, 64 << 10};
      if (::setrlimit(RLIMIT_MEMLOCK, &rl) != 0) return 11;
      Producer<CheckedRow> t(in(d, "try").capacity(100000).mlock(Feature::kTry));
      if (t.memory().mlocked) return 12;
      if (RawConsumer(t.path()).mem_flags() & kMemMlocked) return 13;
      try {
        Producer<CheckedRow> r(in(d, "req").capacity(100000).mlock(Feature::kRequire));
        return 14;
      } catch (const Error& e) {
        const std::string w = e.what();
        if (e.code() != Errc::kResource || w.find("ulimit -l") == std::string::npos) return 15;
      }
      return std::filesystem::exists(d / "req") ? 16 : 0;
    });
    CHECK(rc == 0);
  } else {
    CBUF_SKIP("needs root to drop into an unprivileged user with a small limit");
  }
  // Privileged or within the limit, mlock works and is recorded.
  Producer<CheckedRow> ok(in(d, "ok").capacity(64).mlock(Feature::kRequire));
  CHECK(ok.memory().mlocked);
  CHECK(RawConsumer(ok.path()).mem_flags() & kMemMlocked);
}

namespace {
// A field (in kB) of the mapping that contains `addr`, from /proc/self/smaps, or 0.
std::uint64_t smaps_kb(const void* addr, const std::string& field) {
  std::ifstream f("/proc/self/smaps");
  std::string line;
  bool in_range = false;
  const auto a = reinterpret_cast<std::uintptr_t>(addr);
  while (std::getline(f, line)) {
    unsigned long lo = 0, hi = 0;
    // Mapping lines start "lo-hi perms ..."; field lines start "Name:".
    if (line.find(':') > line.find(' ') && std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2) in_range = a >= lo && a < hi;
    else if (in_range && line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1));
  }
  return 0;
}

// A field (in kB) summed over this process's mappings of the file at `path` (matched by inode: a producer maps
// its file before it links the name), from /proc/self/smaps.
std::uint64_t smaps_kb_of_file(const std::string& path, const std::string& field) {
  const auto inode = static_cast<unsigned long>(std::filesystem::status(path).type() == std::filesystem::file_type::regular
                                                    ? cbuf::os::identity_at(path).second
                                                    : 0);
  std::ifstream f("/proc/self/smaps");
  std::string line;
  bool in_file = false;
  std::uint64_t kb = 0;
  while (std::getline(f, line)) {
    unsigned long lo = 0, hi = 0, offset = 0, ino = 0;
    char perms[8], dev[16];
    // Mapping lines: "lo-hi perms offset dev inode [path]"; field lines start "Name:".
    if (line.find(':') > line.find(' ') &&
        std::sscanf(line.c_str(), "%lx-%lx %7s %lx %15s %lu", &lo, &hi, perms, &offset, dev, &ino) == 6)
      in_file = inode != 0 && ino == inode;
    else if (in_file && line.rfind(field + ":", 0) == 0)
      kb += std::stoull(line.substr(field.size() + 1));
  }
  return kb;
}

struct HugePagesReserved {
  std::string old;
  bool ok = false;
  explicit HugePagesReserved(int pages) {
    std::ifstream in("/proc/sys/vm/nr_hugepages");
    in >> old;
    std::ofstream out("/proc/sys/vm/nr_hugepages");
    out << pages;
    out.close();
    std::ifstream check("/proc/sys/vm/nr_hugepages");
    int now = 0;
    check >> now;
    ok = now >= pages;
  }
  ~HugePagesReserved() { std::ofstream("/proc/sys/vm/nr_hugepages") << old; }
};
}  // namespace

TEST_CASE("huge pages on hugetlbfs: really used (smaps), recorded, readable, exhaustion handled", "[os]") {
  if (::geteuid() != 0) CBUF_SKIP("needs root to reserve huge pages and mount hugetlbfs");
  HugePagesReserved reserve(4);
  if (!reserve.ok) CBUF_SKIP("the kernel gave fewer than 4 huge pages (/proc/sys/vm/nr_hugepages)");
  ScratchMount mnt("hugetlbfs", "pagesize=2M");
  if (!mnt.mounted) CBUF_SKIP("cannot mount hugetlbfs here");
  {
    Producer<CheckedRow> p(ProducerOptions().name("hp").hugetlbfs_dir(mnt.dir.path()).capacity(1000)
                               .huge_pages(Feature::kRequire).prefault(true));
    CHECK(p.path() == mnt.dir / "hp");  // bare names go to the hugetlbfs mount
    CHECK(p.memory().hugetlbfs);
    CHECK(p.memory().page_size == 2u << 20);
    for (std::uint64_t i = 0; i < 5000; ++i) p.write(CheckedRow::make(i));
    Consumer<CheckedRow> c(p.path());
    CHECK(c.latest()->index == 4999);
    if (!::getenv("CBUF_DIR")) CHECK(RawConsumer("hp").path() == p.path());  // found by name on the mount
    const Header& h = c.raw().header();
    CHECK(h.page_size == 2u << 20);
    CHECK(h.data_offset % (2u << 20) == 0);
    CHECK((h.mem_flags & kMemHugetlbfs) != 0);
    CHECK((h.mem_flags & kMemPrefaulted) != 0);
    CHECK(smaps_kb(c.raw().raw_row_unvalidated(0).data(), "KernelPageSize") == 2048);
  }
  // More than the reserved pages: require fails naming nr_hugepages; try falls back to normal pages.
  const auto big = ProducerOptions().name("big").hugetlbfs_dir(mnt.dir.path()).capacity(200000);  // ~14 MiB
  try {
    Producer<CheckedRow> p(ProducerOptions(big).huge_pages(Feature::kRequire));
    FAIL("got more huge pages than reserved");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::kResource);
    CHECK(std::string(e.what()).find("nr_hugepages") != std::string::npos);
  }
  CHECK_FALSE(std::filesystem::exists(mnt.dir / "big"));
  TempDir plain;
  Producer<CheckedRow> fallback(ProducerOptions(big).dir(plain.path()).huge_pages(Feature::kTry));
  CHECK_FALSE(fallback.memory().hugetlbfs);
  CHECK(fallback.path() == plain / "big");
  CHECK((RawConsumer(fallback.path()).mem_flags() & kMemHugetlbfs) == 0);
}

TEST_CASE("transparent huge pages on tmpfs: advised and recorded when the system allows it", "[os]") {
  const std::string mode = os::thp_shmem_mode();
  std::string restore;
  if (mode == "never" || mode == "deny") {
    if (::geteuid() != 0) CBUF_SKIP("shmem THP is '" << mode << "' and only root can change it");
    std::ofstream("/sys/kernel/mm/transparent_hugepage/shmem_enabled") << "advise";
    if (os::thp_shmem_mode() != "advise") CBUF_SKIP("cannot enable shmem THP on this kernel");
    restore = mode;
  }
  struct Restore {
    std::string mode;
    ~Restore() {
      if (!mode.empty()) std::ofstream("/sys/kernel/mm/transparent_hugepage/shmem_enabled") << mode;
    }
  } restore_mode{restore};
  TempDir d;
  if (os::hugetlbfs_mount()) CBUF_SKIP("a hugetlbfs mount exists; it takes precedence over THP");
  Producer<CheckedRow> p(in(d, "thp").capacity(100000).huge_pages(Feature::kRequire));
  CHECK(p.memory().thp_advised);
  CHECK_FALSE(p.memory().hugetlbfs);
  RawConsumer c(p.path());
  CHECK((c.mem_flags() & kMemThpAdvised) != 0);
  CHECK(c.header().data_offset % (2u << 20) == 0);  // aligned so huge pages can back the data area
}

TEST_CASE("huge pages without hugetlbfs or THP: try falls back, require says how to fix the system", "[os]") {
  if (os::hugetlbfs_mount() || os::thp_shmem_mode() != "never")
    CBUF_SKIP("this machine has huge pages available (hugetlbfs mounted or shmem THP on)");
  TempDir d;
  Producer<CheckedRow> t(in(d, "t").huge_pages(Feature::kTry));
  CHECK_FALSE(t.memory().hugetlbfs);
  CHECK_FALSE(t.memory().thp_advised);
  try {
    Producer<CheckedRow> r(in(d, "r").huge_pages(Feature::kRequire));
    FAIL("huge pages required and granted from nowhere");
  } catch (const Error& e) {
    const std::string w = e.what();
    CHECK(e.code() == Errc::kResource);
    CHECK(w.find("nr_hugepages") != std::string::npos);
    CHECK(w.find("mount -t hugetlbfs") != std::string::npos);
  }
  CHECK_FALSE(std::filesystem::exists(d / "r"));
}

TEST_CASE("consumer prefault maps the whole ring at attach, without it pages come on first touch", "[os]") {
  TempDir d;
  Producer<CheckedRow> p(in(d, "pf").capacity(8192));
  const std::uint64_t file_kb = RawConsumer(p.path()).layout().file_size / 1024;
  REQUIRE(file_kb >= 256);
  Consumer<CheckedRow> lazy(p.path());
  Consumer<CheckedRow> eager(p.path(), ConsumerOptions().prefault(true));
  // Rss of each consumer's own mapping: the lazy one has touched the header and the first slot only.
  CHECK(smaps_kb(lazy.raw().raw_row_unvalidated(0).data(), "Rss") < file_kb / 4);
  CHECK(smaps_kb(eager.raw().raw_row_unvalidated(0).data(), "Rss") >= file_kb);
}

TEST_CASE("producer prefault: every page of the file is resident at creation, without it pages come on first write",
          "[os]") {
  TempDir d;
  Producer<CheckedRow> lazy(in(d, "lazy").capacity(8192));
  Producer<CheckedRow> eager(in(d, "eager").capacity(8192).prefault(true));
  const std::uint64_t file_kb = RawConsumer(eager.raw().path()).layout().file_size / 1024;
  REQUIRE(file_kb >= 256);
  CHECK(eager.raw().memory().prefaulted);
  CHECK_FALSE(lazy.raw().memory().prefaulted);
  // Rss of each producer's mapping of its file (this process maps each file once: no consumer here).
  CHECK(smaps_kb_of_file(lazy.raw().path(), "Rss") < file_kb / 4);
  CHECK(smaps_kb_of_file(eager.raw().path(), "Rss") >= file_kb);
}

TEST_CASE("latency helpers: pin to a CPU, real-time priority or a clear refusal", "[os]") {
  std::thread([] {
    CHECK_NOTHROW(pin_current_thread(0));
    CHECK(sched_getcpu() == 0);
    try {
      pin_current_thread(100000);
      FAIL("pinned to a CPU that does not exist");
    } catch (const Error& e) {
      CHECK(e.code() == Errc::kInvalidArgument);
    }
    try {
      set_realtime_priority(1);
      int policy = 0;
      sched_param sp{};
      pthread_getschedparam(pthread_self(), &policy, &sp);
      CHECK(policy == SCHED_FIFO);
    } catch (const Error& e) {
      CHECK(e.code() == Errc::kPermission);
      CHECK(std::string(e.what()).find("CAP_SYS_NICE") != std::string::npos);
    }
  }).join();
}
