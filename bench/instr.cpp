// Fixed workloads for the instruction-count regression check (bench/instructions.py runs each under
// valgrind --tool=callgrind, collecting only inside the cbuf_instr_* functions, and divides by the rows).
//
//   cbuf_instr WORKLOAD     WORKLOAD: write64 wbatch64 next64 batch64 write1k next1k write4k next4k (and 64k)
//   cbuf_instr --compiler   prints the compiler that built it (counts are only comparable for the same one)
//
// Prints "rows N" (the rows the collected functions handled) on success.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <cbuf/cbuf.hpp>

#ifndef CBUF_INSTR_FLAGS
#define CBUF_INSTR_FLAGS ""
#endif

namespace {

// Row size, and the ring and chunks per workload: 131072 rows up to 1 KiB, fewer for the large rows (the
// count per row is what matters, and callgrind is slow).
struct Shape {
  std::uint32_t row_bytes;
  std::uint64_t capacity;
  int chunks;
};
bool shape_of(const std::string& size, Shape& s) {
  if (size == "64") s = {64, 4096, 32};
  else if (size == "1k") s = {1024, 4096, 32};
  else if (size == "4k") s = {4096, 1024, 16};
  else if (size == "64k") s = {65536, 256, 4};
  else return false;
  return true;
}

}  // namespace

// Collected regions: one call handles one chunk of kCapacity rows.
extern "C" __attribute__((noinline)) void cbuf_instr_write(cbuf::RawProducer& p, std::byte* row, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) {
    std::memcpy(row, &i, 8);
    p.write(row);
  }
}
extern "C" __attribute__((noinline)) std::uint64_t cbuf_instr_write_batch(cbuf::RawProducer& p, std::byte* rows,
                                                                          std::uint64_t n) {
  return p.write_batch(rows, n);
}
extern "C" __attribute__((noinline)) std::uint64_t cbuf_instr_next(cbuf::RawConsumer& c, std::byte* row,
                                                                   std::uint64_t n) {
  std::uint64_t got = 0;
  for (std::uint64_t i = 0; i < n; ++i) got += c.try_next(row).has_row;
  return got;
}
extern "C" __attribute__((noinline)) std::uint64_t cbuf_instr_batch(cbuf::RawConsumer& c, std::byte* rows,
                                                                    std::uint64_t n) {
  return c.read_new(rows, n).count;
}

int main(int argc, char** argv) {
  const std::string w = argc == 2 ? argv[1] : "";
  if (w == "--compiler") {
#ifdef __clang__
    std::printf("clang %s %s\n", __clang_version__, CBUF_INSTR_FLAGS);
#else
    std::printf("gcc %s %s\n", __VERSION__, CBUF_INSTR_FLAGS);
#endif
    return 0;
  }
  const std::string op = w.substr(0, w.find_first_of("0123456789"));
  Shape shape{};
  if ((op != "write" && op != "wbatch" && op != "next" && op != "batch") || !shape_of(w.substr(op.size()), shape)) {
    std::fprintf(stderr, "usage: %s (write|wbatch|next|batch)(64|1k|4k|64k)\n", argv[0]);
    return 2;
  }
  const std::uint32_t row_bytes = shape.row_bytes;
  const std::uint64_t kCapacity = shape.capacity;
  const int kChunks = shape.chunks;
  try {
    cbuf::RawProducer p(cbuf::ProducerOptions().capacity(kCapacity).on_close(cbuf::OnClose::kUnlink), row_bytes);
    cbuf::RawConsumer c(p.path());
    std::vector<std::byte> row(row_bytes), rows(row_bytes * kCapacity);
    std::uint64_t handled = 0;
    for (int k = 0; k < kChunks; ++k) {
      if (op == "wbatch") {
        cbuf_instr_write_batch(p, rows.data(), kCapacity);
        handled += kCapacity;
        continue;
      }
      if (op == "write") {
        cbuf_instr_write(p, row.data(), kCapacity);
        handled += kCapacity;
        continue;
      }
      for (std::uint64_t i = 0; i < kCapacity; ++i) p.write(row.data());
      handled += w.rfind("next", 0) == 0 ? cbuf_instr_next(c, row.data(), kCapacity)
                                         : cbuf_instr_batch(c, rows.data(), kCapacity);
    }
    if (handled != kCapacity * kChunks) {
      std::fprintf(stderr, "cbuf_instr: handled %llu rows, expected %llu\n",
                   static_cast<unsigned long long>(handled), static_cast<unsigned long long>(kCapacity * kChunks));
      return 1;
    }
    std::printf("rows %llu\n", static_cast<unsigned long long>(handled));
  } catch (const cbuf::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
