// A hostile neighbour for the reader-survival tests: a process that can write a buffer file and abuses it.
//   cbuf_hostile_writer PATH MODE SECONDS [SEED]
//   MODE geometry  flips capacity, slot_size and row_size between their real values and absurd ones (the
//                  attach time-of-check/time-of-use race)
//   MODE all       rewrites, at random and with boundary values: every header field, the schema bytes and the
//                  slots' sequence words (never a row's payload)
//   MODE truncate  truncates the file to 0 or 4096 bytes and writes its original bytes back, in a loop
// Prints "running" once it has the file, runs for SECONDS, restores the original bytes, prints "done".
// Stores go through 64-bit relaxed atomics, like any writer racing readers in another process.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cbuf/format.hpp"

namespace {

void store64(std::byte* p, std::uint64_t v) {
  std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(p)).store(v, std::memory_order_relaxed);
}
std::uint64_t load64(const std::byte* p) {
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(const_cast<std::byte*>(p)))
      .load(std::memory_order_relaxed);
}
// Replaces the 32-bit field at `off` (8-aligned word `off & ~7`) keeping the other half of the word.
void store32(std::byte* base, std::size_t off, std::uint32_t v) {
  std::byte* word = base + (off & ~std::size_t{7});
  std::uint64_t w = load64(word);
  const unsigned shift = (off & 4) ? 32 : 0;
  w = (w & ~(0xffffffffull << shift)) | (std::uint64_t{v} << shift);
  store64(word, w);
}

constexpr std::uint64_t kBoundary[] = {0,           1,          7,          8,           63,          64,
                                       4095,        4096,       1ull << 31, 0xffffffffu, 1ull << 32,  1ull << 40,
                                       1ull << 62,  1ull << 63, ~0ull - 1,  ~0ull};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s PATH geometry|all|truncate SECONDS [SEED]\n", argv[0]);
    return 2;
  }
  const std::string path = argv[1], mode = argv[2];
  const double seconds = std::atof(argv[3]);
  std::mt19937_64 rng(argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 1);
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  struct stat st{};
  if (fd < 0 || ::fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(cbuf::kHeaderSize)) {
    std::perror(path.c_str());
    return 1;
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  std::vector<std::byte> original(size);
  if (::pread(fd, original.data(), size, 0) != static_cast<ssize_t>(size)) return 1;
  cbuf::Header h{};
  std::memcpy(&h, original.data(), sizeof h);
  auto* map = static_cast<std::byte*>(::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  if (map == MAP_FAILED) return 1;
  std::printf("running\n");
  std::fflush(stdout);

  auto pick = [&](std::uint64_t real) {
    const auto r = rng() % 4;
    if (r == 0) return real;
    if (r == 1) return kBoundary[rng() % std::size(kBoundary)];
    if (r == 2) return real + (rng() % 17) - 8;
    return rng();
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  std::uint64_t rounds = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    ++rounds;
    if (mode == "geometry") {
      const bool bad = rounds % 2;
      store64(map + offsetof(cbuf::Header, capacity), bad ? kBoundary[rng() % std::size(kBoundary)] : h.capacity);
      store32(map, offsetof(cbuf::Header, slot_size), bad ? static_cast<std::uint32_t>(rng()) : h.slot_size);
      store32(map, offsetof(cbuf::Header, row_size), bad ? static_cast<std::uint32_t>(rng() >> 40) : h.row_size);
    } else if (mode == "all") {
      switch (rng() % 6) {
        case 0: {  // a header word
          const std::size_t off = (rng() % (cbuf::kHeaderSize / 8)) * 8;
          if (off == 0) break;  // the magic stays: readers should get past it and meet the rest
          store64(map + off, pick(load64(original.data() + off)));
          break;
        }
        case 1:  // the head, often near its real value
          store64(map + offsetof(cbuf::Header, head), pick(load64(original.data() + offsetof(cbuf::Header, head))));
          break;
        case 2: {  // a schema word
          if (h.schema_size < 8) break;
          const std::size_t off = h.schema_offset + (rng() % (h.schema_size / 8)) * 8;
          store64(map + off, rng() % 2 ? rng() : load64(original.data() + off));
          break;
        }
        case 3:
        case 4: {  // a slot's sequence word
          if (h.capacity == 0 || h.capacity > (size / 8)) break;
          const std::size_t slot = rng() % h.capacity;
          const std::size_t off = h.data_offset + slot * h.slot_size;
          if (off + 8 > size) break;
          store64(map + off, pick(load64(original.data() + off)));
          break;
        }
        default:  // put the header back now and then, so readers get past attach
          for (std::size_t off = 8; off < cbuf::kHeaderSize; off += 8) store64(map + off, load64(original.data() + off));
      }
    } else if (mode == "truncate") {
      if (::ftruncate(fd, rounds % 2 ? 0 : 4096) != 0) return 1;
      ::usleep(static_cast<useconds_t>(rng() % 300));  // a window for readers to fault in
      if (::pwrite(fd, original.data(), size, 0) != static_cast<ssize_t>(size)) return 1;
    } else {
      std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
      return 2;
    }
  }
  ::munmap(map, size);
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0 || ::pwrite(fd, original.data(), size, 0) != static_cast<ssize_t>(size))
    return 1;
  ::close(fd);
  std::printf("done %llu\n", static_cast<unsigned long long>(rounds));
  return 0;
}
