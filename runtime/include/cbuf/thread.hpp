// cbuf/thread.hpp - latency helpers: pin the calling thread to a CPU, raise it to a real-time priority.
// Errors say what the system refused and how to allow it.
#pragma once

#include <cerrno>
#include <string>

#include "cbuf/error.hpp"
#include "cbuf/os.hpp"

namespace cbuf {

// Pins the calling thread to one CPU (see `nproc`, `lscpu`; isolate it with isolcpus= for the lowest jitter).
inline void pin_current_thread(int cpu) {
  if (cpu < 0 || cpu >= CPU_SETSIZE)
    throw Error(Errc::kInvalidArgument, "", "CPU " + std::to_string(cpu) + " is out of range");
  const int rc = os::set_thread_affinity(cpu);
  if (rc != 0)
    throw Error(rc == EINVAL ? Errc::kInvalidArgument : Errc::kPermission, "",
                "cannot pin this thread to CPU " + std::to_string(cpu) + ": " + detail::errno_text(rc) +
                    "; check the CPU exists and is in this process's allowed set (taskset -p $$, cgroup cpuset)");
}

// SCHED_FIFO at `priority` (1..99) for the calling thread.
inline void set_realtime_priority(int priority) {
  const int rc = os::set_thread_fifo_priority(priority);
  if (rc != 0)
    throw Error(rc == EPERM ? Errc::kPermission : Errc::kInvalidArgument, "",
                "cannot set SCHED_FIFO priority " + std::to_string(priority) + ": " + detail::errno_text(rc) +
                    "; run with CAP_SYS_NICE, raise 'ulimit -r' (rtprio in /etc/security/limits.conf), or use chrt");
}

}  // namespace cbuf
