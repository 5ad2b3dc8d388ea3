// Helpers shared by the benchmark sections: clock, pinning, statistics and the JSON lines they emit.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <cbuf/cbuf.hpp>
#include <nlohmann/json.hpp>

namespace bench {

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline int g_cpu_producer = 0, g_cpu_consumer = 1;
// --pace NS: the fan-out readers' ConsumerOptions::pace (unset: the runtime's default).
inline std::optional<std::chrono::nanoseconds> g_reader_pace;

inline void pin(int cpu) {
  try {
    cbuf::pin_current_thread(cpu);
  } catch (const cbuf::Error& e) {
    std::fprintf(stderr, "warning: %s\n", e.what());
  }
}

// The CPU model (/proc/cpuinfo), printed with every section whose result may depend on it.
inline std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

using cbuf::detail::cpu_relax;  // the runtime's spin-wait hint (wait.hpp)

struct Stat {
  double median, lo, hi;
};
inline Stat summarize(std::vector<double> v) {
  if (v.empty()) return {0, 0, 0};
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v.front(), v.back()};
}
inline double percentile(std::vector<std::int64_t>& v, double p) {
  std::sort(v.begin(), v.end());
  return static_cast<double>(v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))]);
}

// Raw results, one JSON object per line, printed at the end and written to --json.
inline std::vector<nlohmann::json> g_json;

inline void record(nlohmann::json j) { g_json.push_back(std::move(j)); }

}  // namespace bench
