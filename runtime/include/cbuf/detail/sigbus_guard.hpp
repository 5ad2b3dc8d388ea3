// cbuf/detail/sigbus_guard.hpp - surviving a buffer file that another process truncates under our mapping.
//
// Design:
//   Problem: a shared file mapping whose file shrinks raises SIGBUS on the next access past the new end of
//   file, and the default action kills the process - any process that can write the file (the producer, a
//   writable reader, a hostile neighbour with `truncate`) could kill every reader. Aeron and LMDB document the
//   hazard; cbuf survives it.
//   Technique: a process-wide SIGBUS handler and a fixed table of guarded address ranges (one per mapping a
//   cbuf object holds). A fault whose address lies in a guarded range is a truncation: the handler marks the
//   range as faulted, then maps a private zero page over the faulting page (MAP_FIXED, the range's own page
//   granularity), so the faulting load or store completes and the program goes on. Zero sequence words read as
//   "never written", so no row read from such a page is ever valid; the owning object checks the flag after each
//   call and reports the truncation as an error (kTruncated), discarding what the call read. Any other SIGBUS -
//   outside every guarded range, or sent by kill() - goes to the handler that was installed before ours, or gets
//   the default action, so a real SIGBUS elsewhere behaves as it would without cbuf.
//   The table is constant-initialised atomics, so the handler reads it without locks or allocation. The flag
//   is set before the zero page is mapped: a thread that reads the zero page (without faulting itself) and then
//   checks the flag sees it set.
//   Each shared object that includes this header (e.g. the Python module) has its own table and installs its
//   own handler, chained to the previous one; ranges are found by whichever copy registered them.
#pragma once

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

namespace cbuf::detail {

inline constexpr std::size_t kGuardSlots = 1024;  // mappings guarded at once; more are simply not guarded

struct GuardSlot {
  std::atomic<std::uint32_t> used{0};
  std::atomic<std::uintptr_t> begin{0};
  std::atomic<std::uintptr_t> end{0};
  std::atomic<std::uintptr_t> granularity{0};  // the mapping's page size: a zero page replaces this much
  std::atomic<std::uint32_t> faulted{0};       // set by the handler: the file shrank under this range
};
static_assert(std::atomic<std::uintptr_t>::is_always_lock_free && std::atomic<std::uint32_t>::is_always_lock_free,
              "the signal handler may only touch lock-free atomics");

inline GuardSlot g_guard_slots[kGuardSlots];
inline struct sigaction g_previous_sigbus{};

// The action that was installed before ours: call it, or take the default action.
inline void chain_sigbus(int sig, siginfo_t* info, void* context) noexcept {
  const struct sigaction& prev = g_previous_sigbus;
  if ((prev.sa_flags & SA_SIGINFO) && prev.sa_sigaction) return prev.sa_sigaction(sig, info, context);
  if (!(prev.sa_flags & SA_SIGINFO) && prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN && prev.sa_handler)
    return prev.sa_handler(sig);
  // Default action. A hardware fault repeats when the faulting instruction runs again, now with the default
  // disposition; a signal sent by kill() does not, so raise it again.
  struct sigaction dfl{};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(SIGBUS, &dfl, nullptr);
  if (info == nullptr || info->si_code <= 0) ::raise(SIGBUS);
}

inline void on_sigbus(int sig, siginfo_t* info, void* context) noexcept {
  if (info != nullptr && info->si_code > 0) {  // > 0: raised by the kernel for a fault, si_addr is meaningful
    const auto addr = reinterpret_cast<std::uintptr_t>(info->si_addr);
    for (GuardSlot& s : g_guard_slots) {
      if (s.used.load(std::memory_order_acquire) == 0) continue;
      const std::uintptr_t b = s.begin.load(std::memory_order_acquire), e = s.end.load(std::memory_order_acquire);
      if (addr < b || addr >= e) continue;
      const std::uintptr_t g = s.granularity.load(std::memory_order_relaxed);
      const std::uintptr_t page = addr & ~(g - 1);
      s.faulted.store(1, std::memory_order_seq_cst);  // before the zero page: see Design
      void* p = ::mmap(reinterpret_cast<void*>(page), g, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      if (p != MAP_FAILED) return;  // the access is retried and now completes (reading zeros)
      break;                        // could not patch it: fall through to the previous handler / default
    }
  }
  chain_sigbus(sig, info, context);
}

inline void install_sigbus_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa{};
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGBUS, &sa, &g_previous_sigbus);
  });
}

// Guards [addr, addr + size) (addr aligned to `granularity`, a power of two). Returns the slot, or -1 when the
// table is full (the mapping then works as before, unguarded).
inline int guard_range(const void* addr, std::size_t size, std::size_t granularity) {
  install_sigbus_handler();
  for (std::size_t i = 0; i < kGuardSlots; ++i) {
    GuardSlot& s = g_guard_slots[i];
    std::uint32_t expected = 0;
    if (!s.used.compare_exchange_strong(expected, 2, std::memory_order_acquire)) continue;  // 2: being filled
    s.begin.store(reinterpret_cast<std::uintptr_t>(addr), std::memory_order_relaxed);
    s.end.store(reinterpret_cast<std::uintptr_t>(addr) + size, std::memory_order_relaxed);
    s.granularity.store(granularity, std::memory_order_relaxed);
    s.faulted.store(0, std::memory_order_relaxed);
    s.used.store(1, std::memory_order_release);  // the handler's acquire load of `used` sees the range
    return static_cast<int>(i);
  }
  return -1;
}

// Ends the guard before the range is unmapped.
inline void unguard_range(int slot) noexcept {
  if (slot < 0) return;
  GuardSlot& s = g_guard_slots[slot];
  s.end.store(0, std::memory_order_relaxed);
  s.begin.store(0, std::memory_order_relaxed);
  s.used.store(0, std::memory_order_release);
}

// The flag of a guarded range (one that is never set for an unguarded one), for callers that check it often.
inline const std::atomic<std::uint32_t>& fault_flag(int slot) noexcept {
  static const std::atomic<std::uint32_t> never{0};
  return slot >= 0 ? g_guard_slots[slot].faulted : never;
}

inline bool range_faulted(int slot) noexcept {
  // Relaxed: the handler stores the flag before it patches the page (Design), and the page-table change is
  // a system call on the faulting thread, which serialises with every thread that then reads the zero page.
  return fault_flag(slot).load(std::memory_order_relaxed) != 0;
}

}  // namespace cbuf::detail
