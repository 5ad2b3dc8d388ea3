// cbuf/memory_plan.hpp - what memory a producer's buffer gets: huge pages (hugetlbfs or transparent), mlock,
// prefaulting. ProducerOptions say what is wanted (off / try / require); the plan decides once, from what this
// machine offers, where the file goes and what page size backs it, then applies the rest to the mapping and
// reports what the OS granted. Every refusal of a kRequire is worded here, with its fix.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "cbuf/error.hpp"
#include "cbuf/format.hpp"
#include "cbuf/options.hpp"
#include "cbuf/os.hpp"

namespace cbuf {

// What the producer actually got from the OS (the request may have been "try").
struct MemoryReport {
  bool mlocked = false;
  std::uint64_t page_size = 0;  // page size backing the buffer
  bool hugetlbfs = false;       // on a hugetlbfs mount
  bool thp_advised = false;     // MADV_HUGEPAGE accepted on tmpfs
  bool prefaulted = false;
};

namespace detail {

class MemoryPlan {
 public:
  static constexpr std::uint64_t kThpSize = 2u << 20;

  // Decides for the buffer `name` (a bare name or a path). Throws Errc::kResource if huge pages are required
  // and this machine has neither a hugetlbfs mount nor transparent huge pages for shared memory.
  static MemoryPlan choose(const std::string& name, const ProducerOptions& opts) {
    MemoryPlan p(opts);
    p.dir_ = opts.dir();
    if (opts.huge_pages() == Feature::kOff) return p;
    const bool is_path = name.find('/') != std::string::npos;
    const auto huge = os::hugetlbfs_mount(is_path ? os::parent_dir(name) : opts.hugetlbfs_dir());
    if (huge) {
      p.hugetlbfs_page_ = huge->page_size;
      if (!is_path) p.dir_ = huge->dir;  // a bare name goes onto the mount
      return p;
    }
    const std::string thp_mode = os::thp_shmem_mode();
    p.thp_ = thp_mode == "always" || thp_mode == "within_size" || thp_mode == "advise" || thp_mode == "force";
    if (!p.thp_ && opts.huge_pages() == Feature::kRequire)
      throw Error(Errc::kResource, os::resolve(name, opts.dir()),
                  "huge pages required, but " +
                      (opts.hugetlbfs_dir().empty() ? std::string("no hugetlbfs is mounted")
                                                    : opts.hugetlbfs_dir() + " is not a hugetlbfs mount") +
                      " and transparent huge pages for shared memory are '" + thp_mode +
                      "'; fix: reserve pages (echo 64 > /proc/sys/vm/nr_hugepages) and mount hugetlbfs "
                      "(mount -t hugetlbfs none /dev/hugepages), or allow THP (echo advise > "
                      "/sys/kernel/mm/transparent_hugepage/shmem_enabled), or use huge_pages(Feature::kTry)");
    return p;
  }

  // The plan after creating the file on hugetlbfs failed with Errc::kNoSpace (too few free huge pages):
  // normal pages in the normal directory for kTry; for kRequire, the error that says how to reserve more.
  // Any other error, or a plan without hugetlbfs, is rethrown as it is.
  MemoryPlan after_failure(const Error& e) const {
    if (!hugetlbfs_page_ || e.code() != Errc::kNoSpace) throw e;
    if (opts_huge_ == Feature::kRequire)
      throw Error(Errc::kResource, e.path(),
                  "not enough free huge pages (HugePages_Free: " + os::meminfo_field("HugePages_Free") + " of " +
                      std::to_string(*hugetlbfs_page_ >> 10) + " kB); reserve more (echo N > "
                      "/proc/sys/vm/nr_hugepages) or use huge_pages(Feature::kTry)");
    MemoryPlan p = *this;
    p.hugetlbfs_page_.reset();
    p.dir_ = requested_dir_;
    return p;
  }

  const std::string& dir() const noexcept { return dir_; }
  // The page size backing the file: the hugetlbfs page size, else the system's.
  std::uint64_t page_size() const noexcept { return hugetlbfs_page_.value_or(os::page_size()); }
  // Where the data area starts aligned: 2 MiB when transparent huge pages may back it (the header still says
  // the system page size, since the kernel decides; see ShmemPmdMapped in /proc/PID/smaps).
  std::uint64_t alignment() const noexcept { return thp_ ? kThpSize : page_size(); }

  // Applies advice, prefaulting and locking to the new mapping; returns the header's mem_flags. Throws
  // Errc::kResource if mlock is required and refused.
  std::uint32_t apply(os::Mapping& map, const std::string& path) const {
    std::uint32_t flags = hugetlbfs_page_ ? kMemHugetlbfs : 0;
    if (thp_ && os::advise_huge_pages(map)) flags |= kMemThpAdvised;
    if (prefault_) {
      // Every page faulted in writable now, so no write faults later: in one call where the kernel can, else by
      // writing each page once (the file is all zeros; storing zero keeps it so).
      if (!os::populate_writable(map))
        for (std::uint64_t off = 0; off < map.size(); off += page_size())
          std::atomic_ref<std::uint8_t>(reinterpret_cast<std::uint8_t*>(map.data())[off]).store(0, std::memory_order_relaxed);
      flags |= kMemPrefaulted;
    }
    if (mlock_ != Feature::kOff) {
      if (os::lock(map) == 0) flags |= kMemMlocked;
      else if (mlock_ == Feature::kRequire) throw Error(Errc::kResource, path, os::mlock_fix(map.size()));
    }
    return flags;
  }

  static MemoryReport report(std::uint32_t flags, std::uint64_t page_size) noexcept {
    return MemoryReport{(flags & kMemMlocked) != 0, page_size, (flags & kMemHugetlbfs) != 0,
                        (flags & kMemThpAdvised) != 0, (flags & kMemPrefaulted) != 0};
  }

 private:
  explicit MemoryPlan(const ProducerOptions& opts)
      : requested_dir_(opts.dir()), opts_huge_(opts.huge_pages()), mlock_(opts.mlock()), prefault_(opts.prefault()) {}

  std::string requested_dir_;
  std::string dir_;
  std::optional<std::uint64_t> hugetlbfs_page_;  // set: the file goes on a hugetlbfs mount
  bool thp_ = false;                             // advise transparent huge pages on tmpfs
  Feature opts_huge_;
  Feature mlock_;
  bool prefault_;
};

}  // namespace detail
}  // namespace cbuf
