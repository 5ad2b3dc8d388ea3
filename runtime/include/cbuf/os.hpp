// cbuf/os.hpp - the OS layer: files, mappings, memory locking, process identity, the futex, thread
// placement. The only header that makes system calls (with detail/sigbus_guard.hpp, the signal handler its
// mappings use); the rest of the runtime decides, this header asks the kernel. What it reports goes through
// cbuf::Error with the path and a fix, or, for the small wrappers, an errno value the caller words.
#pragma once

#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <chrono>
#include <vector>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>

#include "cbuf/detail/sigbus_guard.hpp"
#include "cbuf/error.hpp"

namespace cbuf::os {

inline constexpr const char* kDefaultDir = "/dev/shm";

// The directory buffers live in when only a name is given: $CBUF_DIR if set, else /dev/shm.
inline std::string default_dir() {
  const char* env = std::getenv("CBUF_DIR");
  return env && *env ? std::string(env) : std::string(kDefaultDir);
}

// A buffer name is one path component of [A-Za-z0-9._-], 1..200 characters, not starting with '.'.
inline bool valid_name(const std::string& name) noexcept {
  if (name.empty() || name.size() > 200 || name[0] == '.') return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
      return false;
  return true;
}

// The directory part of a path ("." for a bare name).
inline std::string parent_dir(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
}

// "sensors" -> "<dir>/sensors"; anything containing '/' is taken as a path as it is.
inline std::string resolve(const std::string& name_or_path, const std::string& dir = {}) {
  if (name_or_path.find('/') != std::string::npos) return name_or_path;
  if (!valid_name(name_or_path))
    throw Error(Errc::kInvalidArgument, name_or_path,
                "not a valid buffer name; use 1-200 characters of letters, digits, '_', '-', '.', not starting with '.'"
                " (or give a path containing '/')");
  return (dir.empty() ? default_dir() : dir) + "/" + name_or_path;
}

// cbuf_<pid>_<n>, n counting up within the process.
inline std::string default_name() {
  static std::atomic<std::uint64_t> counter{0};
  return "cbuf_" + std::to_string(::getpid()) + "_" + std::to_string(counter.fetch_add(1, std::memory_order_relaxed));
}

inline std::uint64_t page_size() noexcept { return static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)); }

inline std::uint32_t current_pid() noexcept { return static_cast<std::uint32_t>(::getpid()); }
inline uid_t effective_uid() noexcept { return ::geteuid(); }

inline std::uint64_t realtime_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

// ---------------------------------------------------------------------------------------------------------
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) { reset(); fd_ = std::exchange(o.fd_, -1); }
    return *this;
  }
  ~Fd() { reset(); }
  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// An mmap'ed range, unmapped on destruction. A guarded mapping survives the file being truncated under it
// (detail/sigbus_guard.hpp): accesses past the new end of file read zeros and truncated() turns true.
class Mapping {
 public:
  Mapping() = default;
  Mapping(void* addr, std::size_t size, bool guard = false, std::size_t granularity = 4096)
      : addr_(addr), size_(size), guard_(guard && addr ? detail::guard_range(addr, size, granularity) : -1) {}
  Mapping(Mapping&& o) noexcept
      : addr_(std::exchange(o.addr_, nullptr)), size_(std::exchange(o.size_, 0)), guard_(std::exchange(o.guard_, -1)) {}
  Mapping& operator=(Mapping&& o) noexcept {
    if (this != &o) {
      reset();
      addr_ = std::exchange(o.addr_, nullptr);
      size_ = std::exchange(o.size_, 0);
      guard_ = std::exchange(o.guard_, -1);
    }
    return *this;
  }
  ~Mapping() { reset(); }
  std::byte* data() const noexcept { return static_cast<std::byte*>(addr_); }
  std::size_t size() const noexcept { return size_; }
  // True once an access faulted past the end of the (shrunk) file. Cheap: one relaxed load.
  bool truncated() const noexcept { return detail::range_faulted(guard_); }
  // The flag truncated() reads, for a hot loop that checks it after every call (stable while the mapping lives).
  const std::atomic<std::uint32_t>& fault_flag() const noexcept { return detail::fault_flag(guard_); }
  void reset() noexcept {
    detail::unguard_range(std::exchange(guard_, -1));
    if (addr_) ::munmap(addr_, size_);
    addr_ = nullptr;
    size_ = 0;
  }

 private:
  void* addr_ = nullptr;
  std::size_t size_ = 0;
  int guard_ = -1;  // slot in the SIGBUS guard table, -1 when unguarded
};

inline Errc errc_for(int err) noexcept {
  switch (err) {
    case ENOENT: return Errc::kNotFound;
    case EACCES: case EPERM: return Errc::kPermission;
    case ENOSPC: case EDQUOT: return Errc::kNoSpace;
    case EEXIST: return Errc::kExists;
    case ELOOP: return Errc::kSymlink;
    default: return Errc::kSystem;
  }
}

struct MapOptions {
  bool writable = false;
  bool populate = false;       // fault every page in now (MAP_POPULATE) instead of on first access
  bool guard = true;           // survive truncation of the file (detail/sigbus_guard.hpp)
  std::size_t granularity = 4096;  // page size of the file system (a huge page size on hugetlbfs)
};

inline Mapping map(int fd, std::size_t size, const std::string& path, const MapOptions& o) {
  const int prot = o.writable ? PROT_READ | PROT_WRITE : PROT_READ;
  void* p = ::mmap(nullptr, size, prot, MAP_SHARED | (o.populate ? MAP_POPULATE : 0), fd, 0);
  if (p == MAP_FAILED) {
    const int e = errno;
    throw Error(errc_for(e), path, "mmap of " + std::to_string(size) + " bytes failed: " + detail::errno_text(e));
  }
  return Mapping(p, size, o.guard, o.granularity);
}

inline std::string exists_fix(const std::string& path) {
  return "choose another name, or remove the file if its producer is gone (rm " + path + ")";
}

// ---------------------------------------------------------------------------------------------------------
// Creating a buffer file. The file is built unnamed (O_TMPFILE) or under a hidden temporary name, sized,
// initialised and published, and only then linked at its final path with no-replace semantics. So no reader
// ever finds a half-built file at a buffer path, a crash during creation leaves nothing behind (O_TMPFILE),
// and an existing file - or a planted symlink - at the path is never written through.
class NewFile {
 public:
  // replace: the caller has checked the file at `path` may be replaced; link() then renames over it.
  NewFile(const std::string& path, mode_t mode, bool replace = false) : path_(path), replace_(replace) {
    const auto slash = path.rfind('/');
    dir_ = parent_dir(path);
    struct stat st{};
    if (!replace && ::lstat(path.c_str(), &st) == 0) throw exists_error();
    fd_ = Fd(::open(dir_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (!fd_) {
      const int e = errno;
      if (e != EOPNOTSUPP && e != EISDIR && e != EINVAL) throw open_error(e);
      // File systems without O_TMPFILE (e.g. hugetlbfs): a hidden, exclusive, no-follow temporary name.
      tmp_path_ = dir_ + "/.cbuf-tmp-" + std::to_string(::getpid()) + "-" + path.substr(slash + 1);
      fd_ = Fd(::open(tmp_path_.c_str(), O_CREAT | O_EXCL | O_NOFOLLOW | O_RDWR | O_CLOEXEC, 0600));
      if (!fd_) {
        tmp_path_.clear();
        throw open_error(errno);
      }
    }
    // The mode is exactly `mode`, whatever the umask.
    if (::fchmod(fd_.get(), mode) != 0) {
      const int e = errno;
      discard();
      throw Error(errc_for(e), path_, "cannot set file mode: " + detail::errno_text(e));
    }
  }
  NewFile(const NewFile&) = delete;
  NewFile& operator=(const NewFile&) = delete;
  ~NewFile() { discard(); }

  int fd() const noexcept { return fd_.get(); }

  // Reserves every byte now, so a full file system is an error here and never a SIGBUS later.
  void reserve(std::uint64_t size) {
    const int rc = ::posix_fallocate(fd_.get(), 0, static_cast<off_t>(size));
    if (rc == 0) return;
    if (rc == ENOSPC || rc == EDQUOT || rc == EFBIG)
      throw Error(Errc::kNoSpace, path_,
                  "cannot reserve " + std::to_string(size) + " bytes in " + dir_ + ": " + detail::errno_text(rc) +
                      "; free space there (df -h " + dir_ + "), use a smaller capacity, or enlarge the tmpfs "
                      "(mount -o remount,size=<bytes> " + dir_ + ")");
    throw Error(errc_for(rc), path_, "cannot reserve " + std::to_string(size) + " bytes: " + detail::errno_text(rc));
  }

  // Gives the finished file its name. Fails with kExists if anything (file, symlink, directory) took the name;
  // in replace mode, atomically renames over what is there instead.
  void link() {
    if (replace_) return link_replacing();
    int rc;
    if (tmp_path_.empty()) {
      rc = ::linkat(fd_.get(), "", AT_FDCWD, path_.c_str(), AT_EMPTY_PATH);
      if (rc != 0 && (errno == ENOENT || errno == EPERM)) {  // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH
        const std::string self = "/proc/self/fd/" + std::to_string(fd_.get());
        rc = ::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, path_.c_str(), AT_SYMLINK_FOLLOW);
      }
    } else {
      rc = ::link(tmp_path_.c_str(), path_.c_str());
    }
    if (rc != 0) {
      const int e = errno;
      if (e == EEXIST) throw exists_error();
      throw Error(errc_for(e), path_, "cannot create the buffer file: " + detail::errno_text(e));
    }
    if (!tmp_path_.empty()) ::unlink(tmp_path_.c_str());
    tmp_path_.clear();
  }

  Fd release_fd() noexcept { return std::move(fd_); }

 private:
  void link_replacing() {
    if (tmp_path_.empty()) {  // give the unnamed file a hidden temporary name first, then rename it over
      tmp_path_ = dir_ + "/.cbuf-tmp-" + std::to_string(::getpid()) + "-" + path_.substr(path_.rfind('/') + 1);
      const std::string self = "/proc/self/fd/" + std::to_string(fd_.get());
      if (::linkat(fd_.get(), "", AT_FDCWD, tmp_path_.c_str(), AT_EMPTY_PATH) != 0 &&
          ::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, tmp_path_.c_str(), AT_SYMLINK_FOLLOW) != 0) {
        const int e = errno;
        tmp_path_.clear();
        throw Error(errc_for(e), path_, "cannot create the replacement file: " + detail::errno_text(e));
      }
    }
    if (::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
      const int e = errno;
      throw Error(errc_for(e), path_, "cannot replace the existing buffer: " + detail::errno_text(e));
    }
    tmp_path_.clear();
  }

  void discard() noexcept {
    if (!tmp_path_.empty()) ::unlink(tmp_path_.c_str());
    tmp_path_.clear();
  }
  Error exists_error() const { return Error(Errc::kExists, path_, "already exists; " + exists_fix(path_)); }
  Error open_error(int e) const {
    if (e == ENOENT) return Error(Errc::kNotFound, path_, "directory " + dir_ + " does not exist; create it or choose another directory");
    return Error(errc_for(e), path_, "cannot create a file in " + dir_ + ": " + detail::errno_text(e));
  }

  std::string path_, dir_, tmp_path_;
  bool replace_ = false;
  Fd fd_;
};

// ---------------------------------------------------------------------------------------------------------
// Opening a buffer file for reading: refuses symlinks and anything but a regular file, never blocks (a FIFO
// opened O_NONBLOCK returns at once and is then refused by fstat).
struct OpenedFile {
  Fd fd;
  std::uint64_t size = 0;
  uid_t owner = 0;
  dev_t dev = 0;
  ino_t ino = 0;
  std::size_t page = 4096;  // the file system's page size (st_blksize: a huge page size on hugetlbfs)
};

inline OpenedFile open_readonly(const std::string& path) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) {
    const int e = errno;
    if (e == ENOENT) throw Error(Errc::kNotFound, path, "no such buffer; check the name or path (cbuf ls lists live buffers)");
    throw Error(errc_for(e), path, "cannot stat: " + detail::errno_text(e));
  }
  if (S_ISLNK(st.st_mode))
    throw Error(Errc::kSymlink, path, "is a symbolic link; cbuf does not follow links at buffer paths - open the target path itself");
  if (!S_ISREG(st.st_mode))
    throw Error(Errc::kNotRegularFile, path,
                std::string("is a ") + (S_ISDIR(st.st_mode) ? "directory" : S_ISFIFO(st.st_mode) ? "FIFO" : "special file") +
                    ", not a cbuf buffer file; give the path of a buffer file");
  OpenedFile f;
  f.fd = Fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!f.fd) {
    const int e = errno;
    if (e == EACCES) throw Error(Errc::kPermission, path, "permission denied; consumers need read permission on the file (ask its producer for a group-readable mode)");
    if (e == ELOOP) throw Error(Errc::kSymlink, path, "became a symbolic link; cbuf does not follow links at buffer paths");
    throw Error(errc_for(e), path, "cannot open: " + detail::errno_text(e));
  }
  // The name may have been swapped between lstat and open: check what was actually opened.
  if (::fstat(f.fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    throw Error(Errc::kNotRegularFile, path, "is not a regular file; give the path of a buffer file");
  f.size = static_cast<std::uint64_t>(st.st_size);
  f.owner = st.st_uid;
  f.dev = st.st_dev;
  f.ino = st.st_ino;
  const auto blk = static_cast<std::size_t>(st.st_blksize);
  f.page = std::has_single_bit(blk) && blk > page_size() ? blk : static_cast<std::size_t>(page_size());
  return f;
}

// Maps the first page of the file at `path` writable, if this process may write it and it is still the file
// (device, inode) the consumer attached to; otherwise returns an empty mapping. Used only by consumers that
// block, to register as waiters.
inline Mapping map_header_writable(const std::string& path, dev_t dev, ino_t ino, std::uint64_t page, bool guard) {
  Fd fd(::open(path.c_str(), O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  struct stat st{};
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_dev != dev || st.st_ino != ino) return {};
  void* p = ::mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  return p == MAP_FAILED ? Mapping() : Mapping(p, page, guard, page);
}

// ---------------------------------------------------------------------------------------------------------
// Single writer: the live producer holds an exclusive flock on its file; it is released at close() or when
// the process dies, whatever the way - so "is someone writing this?" never depends on pids.
inline bool try_lock_exclusive(int fd) noexcept { return ::flock(fd, LOCK_EX | LOCK_NB) == 0; }
inline void unlock(int fd) noexcept { ::flock(fd, LOCK_UN); }

// ---------------------------------------------------------------------------------------------------------
// Huge pages.
inline constexpr long kHugetlbfsMagic = 0x958458f6;

struct HugetlbfsMount {
  std::string dir;
  std::uint64_t page_size = 0;
};

// The hugetlbfs mount at `dir`, or the first one in /proc/mounts if `dir` is empty.
inline std::optional<HugetlbfsMount> hugetlbfs_mount(const std::string& dir = {}) {
  auto probe = [](const std::string& d) -> std::optional<HugetlbfsMount> {
    struct statfs fs{};
    if (::statfs(d.c_str(), &fs) != 0 || fs.f_type != kHugetlbfsMagic) return std::nullopt;
    return HugetlbfsMount{d, static_cast<std::uint64_t>(fs.f_bsize)};
  };
  if (!dir.empty()) return probe(dir);
  std::ifstream mounts("/proc/mounts");
  std::string dev, mnt, type, rest;
  while (mounts >> dev >> mnt >> type && std::getline(mounts, rest))
    if (type == "hugetlbfs")
      if (auto m = probe(mnt)) return m;
  return std::nullopt;
}

// The bracketed word of /sys/kernel/mm/transparent_hugepage/shmem_enabled ("never", "advise", ...).
inline std::string thp_shmem_mode() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
  std::string line;
  std::getline(f, line);
  const auto a = line.find('['), b = line.find(']');
  return a == std::string::npos || b == std::string::npos ? "unavailable" : line.substr(a + 1, b - a - 1);
}

inline std::string meminfo_field(const std::string& key) {
  std::ifstream f("/proc/meminfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key + ":", 0) == 0) {
      std::string v = line.substr(key.size() + 1);
      return v.substr(v.find_first_not_of(' '));
    }
  return "?";
}

// True if something - a file, a directory, a dangling symlink - holds the name at `path` (lstat succeeds).
inline bool name_exists(const std::string& path) noexcept {
  struct stat st{};
  return ::lstat(path.c_str(), &st) == 0;
}

// The (device, inode) at `path` now, without following a symlink; (0, 0) if nothing is there.
inline std::pair<dev_t, ino_t> identity_at(const std::string& path) noexcept {
  struct stat st{};
  return ::lstat(path.c_str(), &st) == 0 ? std::pair<dev_t, ino_t>{st.st_dev, st.st_ino} : std::pair<dev_t, ino_t>{0, 0};
}

// What lstat (at a path, not following a symlink) or fstat (of an open file) says, in the runtime's terms.
struct FileStat {
  bool regular = false;
  uid_t owner = 0;
  dev_t dev = 0;
  ino_t ino = 0;
  std::uint64_t size = 0;
};
inline FileStat to_file_stat(const struct stat& st) noexcept {
  return {S_ISREG(st.st_mode), st.st_uid, st.st_dev, st.st_ino, static_cast<std::uint64_t>(st.st_size)};
}
inline std::optional<FileStat> stat_path(const std::string& path) noexcept {
  struct stat st{};
  return ::lstat(path.c_str(), &st) == 0 ? std::optional<FileStat>(to_file_stat(st)) : std::nullopt;
}
inline std::optional<FileStat> stat_fd(int fd) noexcept {
  struct stat st{};
  return ::fstat(fd, &st) == 0 ? std::optional<FileStat>(to_file_stat(st)) : std::nullopt;
}

// Opens an existing file for reading and writing: no symlink followed, no blocking (a FIFO), close-on-exec.
// An invalid Fd if that fails.
inline Fd open_read_write(const std::string& path) noexcept {
  return Fd(::open(path.c_str(), O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
}

// Reads exactly `size` bytes at `offset`; false on a short read or an error.
inline bool read_at(int fd, void* dst, std::size_t size, std::uint64_t offset) noexcept {
  return ::pread(fd, dst, size, static_cast<off_t>(offset)) == static_cast<ssize_t>(size);
}

// Removes the name; 0, or the errno value (ENOENT included: the caller decides whether that is an error).
inline int unlink_path(const std::string& path) noexcept { return ::unlink(path.c_str()) == 0 ? 0 : errno; }

// Asks for transparent huge pages behind a shared mapping (tmpfs with shmem_enabled=advise); true if accepted.
inline bool advise_huge_pages(const Mapping& m) noexcept { return ::madvise(m.data(), m.size(), MADV_HUGEPAGE) == 0; }

// Faults every page of a writable mapping in, writable, in one call (MADV_POPULATE_WRITE, Linux 5.14+): what
// touching each page does, in less than half the time (4 GiB: 2.9 s against 7.4 s). False where the kernel
// does not have it (EINVAL): the caller touches the pages instead.
inline bool populate_writable(Mapping& m) noexcept {
  constexpr int kMadvPopulateWrite = 23;  // <sys/mman.h> of older C libraries lacks the name
  return ::madvise(m.data(), m.size(), kMadvPopulateWrite) == 0;
}

// The directories a bare name is looked up in: `dir` if given; else $CBUF_DIR or /dev/shm, then the first
// hugetlbfs mount (where producers put buffers on huge pages). Tools list buffers in the same places.
inline std::vector<std::string> search_dirs(const std::string& dir = {}) {
  if (!dir.empty()) return {dir};
  std::vector<std::string> dirs{default_dir()};
  if (const auto huge = hugetlbfs_mount()) dirs.push_back(huge->dir);
  return dirs;
}

// Where a consumer looks for a bare name: the first of search_dirs() that has it (else the first). Paths are
// taken as they are.
inline std::string resolve_existing(const std::string& name_or_path, const std::string& dir = {}) {
  const std::string first = resolve(name_or_path, dir);
  if (name_or_path.find('/') != std::string::npos || !dir.empty() || name_exists(first)) return first;
  const auto dirs = search_dirs();
  for (std::size_t i = 1; i < dirs.size(); ++i) {
    const std::string alt = dirs[i] + "/" + name_or_path;
    if (name_exists(alt)) return alt;
  }
  return first;
}

// Removes the buffer file at `path` if it is still the file (dev, ino) and no producer holds its lock (a live
// producer always does: the lock is the liveness test that cannot be fooled by pids). The name is unlinked
// while the lock is held, so no producer can start using the file in between. dry_run: only the checks.
inline bool unlink_if_unheld(const std::string& path, dev_t dev, ino_t ino, bool dry_run) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  struct stat st{};
  if (!fd || ::fstat(fd.get(), &st) != 0 || st.st_dev != dev || st.st_ino != ino) return false;
  if (!try_lock_exclusive(fd.get())) return false;  // a live producer holds it
  const auto [now_dev, now_ino] = identity_at(path);
  const bool same = now_dev == dev && now_ino == ino;
  const bool removed = same && (dry_run || ::unlink(path.c_str()) == 0);
  unlock(fd.get());
  return removed;
}

// ---------------------------------------------------------------------------------------------------------
// Waiting for a name to appear: inotify on the directories, so a consumer that starts before its producer
// wakes when the file is linked (IN_CREATE) or renamed into place (IN_MOVED_TO), with no polling loop.
class DirWatch {
 public:
  explicit DirWatch(const std::vector<std::string>& dirs) : fd_(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK)) {
    if (!fd_) return;
    for (const std::string& d : dirs) ::inotify_add_watch(fd_.get(), d.c_str(), IN_CREATE | IN_MOVED_TO | IN_ATTRIB);
  }
  // Sleeps until something is created or renamed in a watched directory, or `deadline`. Without inotify (out
  // of watches), sleeps in 10 ms steps instead.
  void wait(std::chrono::steady_clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    if (!fd_) {
      ::usleep(static_cast<useconds_t>(std::min<long>(left.count(), 10) * 1000));
      return;
    }
    pollfd p{fd_.get(), POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(std::min<long>(left.count() + 1, 1000)));
    char buf[4096];
    while (::read(fd_.get(), buf, sizeof buf) > 0) {
    }
  }

 private:
  Fd fd_;
};

// resolve_existing(), waiting until `deadline` for the name to appear (in the directory, or for a bare name on
// the hugetlbfs mount too). Returns the path to open; if nothing appeared, the path where it was expected.
inline std::string resolve_waiting(const std::string& name_or_path, const std::string& dir,
                                   std::chrono::steady_clock::time_point deadline) {
  std::string path = resolve_existing(name_or_path, dir);
  if (name_exists(path) || std::chrono::steady_clock::now() >= deadline) return path;
  std::vector<std::string> dirs{parent_dir(path)};
  if (name_or_path.find('/') == std::string::npos && dir.empty())
    if (const auto huge = hugetlbfs_mount()) dirs.push_back(huge->dir);
  DirWatch watch(dirs);
  while ((path = resolve_existing(name_or_path, dir), !name_exists(path)) && std::chrono::steady_clock::now() < deadline)
    watch.wait(deadline);  // re-checked after the watch is in place: a name linked meanwhile is not missed
  return path;
}

// ---------------------------------------------------------------------------------------------------------
// Memory locking. Returns 0 on success or the errno.
inline int lock(const Mapping& m) noexcept { return ::mlock(m.data(), m.size()) == 0 ? 0 : errno; }

inline std::string mlock_fix(std::uint64_t bytes) {
  rlimit rl{};
  ::getrlimit(RLIMIT_MEMLOCK, &rl);
  const std::string limit = rl.rlim_cur == RLIM_INFINITY ? "unlimited" : std::to_string(rl.rlim_cur) + " bytes";
  return "mlock of " + std::to_string(bytes) + " bytes failed (RLIMIT_MEMLOCK is " + limit +
         "); raise it with 'ulimit -l unlimited' (or memlock in /etc/security/limits.conf, LimitMEMLOCK= in a "
         "systemd unit), or use a smaller capacity";
}

// ---------------------------------------------------------------------------------------------------------
// Process identity: the start time of a process (clock ticks after boot, field 22 of /proc/PID/stat). With
// the pid it names a process uniquely across pid reuse.
struct ProcStat {
  char state = '?';             // field 3: R, S, D, Z (zombie), X (dead), ...
  std::uint64_t start_time = 0;  // field 22
};

// Fields 3 and 22 of /proc/PID/stat, from one read of the file.
inline std::optional<ProcStat> read_proc_stat(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  if (!f) return std::nullopt;
  std::string line;
  std::getline(f, line);
  const auto close_paren = line.rfind(')');  // the command name may contain spaces and ')'
  if (close_paren == std::string::npos || close_paren + 2 >= line.size()) return std::nullopt;
  std::istringstream rest(line.substr(close_paren + 2));
  ProcStat st;
  std::string field;
  for (int i = 3; i <= 22; ++i) {
    if (!(rest >> field)) return std::nullopt;
    if (i == 3) st.state = field[0];
  }
  try {
    st.start_time = std::stoull(field);
  } catch (...) {
    return std::nullopt;
  }
  return st;
}

inline std::optional<std::uint64_t> process_start_time(pid_t pid) {
  const auto st = read_proc_stat(pid);
  return st ? std::optional<std::uint64_t>(st->start_time) : std::nullopt;
}

// True while the process (pid, start_time) exists and is not a zombie.
inline bool process_alive(std::uint32_t pid, std::uint64_t start_time) {
  if (pid == 0) return false;
  const auto st = read_proc_stat(static_cast<pid_t>(pid));
  return st && st->start_time == start_time && st->state != 'Z' && st->state != 'X';
}

// ---------------------------------------------------------------------------------------------------------
// The futex on a 32-bit word of a shared mapping (no FUTEX_PRIVATE_FLAG: several processes map the word).
// Waits while *word == expected, at most `timeout`; returns on a wake, a timeout, a signal or a changed word.
inline void futex_wait(const std::uint32_t* word, std::uint32_t expected, std::chrono::nanoseconds timeout) noexcept {
  timespec ts{static_cast<time_t>(timeout.count() / 1000000000), static_cast<long>(timeout.count() % 1000000000)};
  ::syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, nullptr, 0);
}
inline void futex_wake_all(std::uint32_t* word) noexcept {
  ::syscall(SYS_futex, word, FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}

// ---------------------------------------------------------------------------------------------------------
// The calling thread's CPU and scheduling class; 0, or the error number (thread.hpp words it).
inline int set_thread_affinity(int cpu) noexcept {
  if (cpu < 0 || cpu >= CPU_SETSIZE) return EINVAL;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);
}
inline int set_thread_fifo_priority(int priority) noexcept {
  sched_param p{};
  p.sched_priority = priority;
  return ::pthread_setschedparam(::pthread_self(), SCHED_FIFO, &p);
}

}  // namespace cbuf::os
