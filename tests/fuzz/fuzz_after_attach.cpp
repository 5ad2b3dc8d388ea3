// libFuzzer target: the file changes AFTER a consumer attached. Each input starts from the same valid buffer
// (16 slots of checksummed rows), attaches, and then is read as a list of operations on the file, each
// followed by a round of every read a consumer offers:
//   op byte % 4 == 0..1  store the next 8 bytes at the next 2 bytes' offset (8-aligned, anywhere in the file)
//   op byte % 4 == 2     truncate the file to (next 2 bytes) % (size + 1) bytes
//   op byte % 4 == 3     give the file its original bytes back
// Anything but a clean cbuf::Error or a read that stays inside the caller's buffer - a crash, a SIGBUS, a
// sanitizer report - is a finding. (fuzz_attach.cpp mutates the file before attaching.)
//   short run:  cbuf_fuzz_after_attach -max_total_time=15 CORPUS_DIR   (./dev.sh test does this)
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <cbuf/cbuf.hpp>

namespace {

struct Pristine {
  std::string path;
  std::vector<std::byte> bytes;
};

const Pristine& pristine() {
  static const Pristine p = [] {
    Pristine r;
    const std::string dir = "/dev/shm/cbuf-fuzz-after-" + std::to_string(::getpid());
    ::mkdir(dir.c_str(), 0700);
    r.path = dir + "/input";
    {
      cbuf::RawProducer prod(cbuf::ProducerOptions().name(dir + "/seed").capacity(16).on_close(cbuf::OnClose::kUnlink), 64);
      std::uint64_t row[8];
      for (std::uint64_t i = 0; i < 40; ++i) {
        for (std::uint64_t k = 0; k < 8; ++k) row[k] = i * 8 + k;
        prod.write(row);
      }
      const int fd = ::open(prod.path().c_str(), O_RDONLY | O_CLOEXEC);
      r.bytes.resize(static_cast<std::size_t>(::lseek(fd, 0, SEEK_END)));
      if (::pread(fd, r.bytes.data(), r.bytes.size(), 0) != static_cast<ssize_t>(r.bytes.size())) std::abort();
      ::close(fd);
    }
    return r;
  }();
  return p;
}

void restore(int fd, const std::vector<std::byte>& bytes) {
  if (::ftruncate(fd, static_cast<off_t>(bytes.size())) != 0 ||
      ::pwrite(fd, bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size()))
    std::abort();
}

void read_round(cbuf::RawConsumer& c, std::vector<std::byte>& rows) {
  try {
    const std::uint64_t head = c.head();
    (void)c.latest(rows.data());
    (void)c.last(4, rows.data());
    (void)c.read_new(rows.data(), 4);
    (void)c.rows(head > 6 ? head - 6 : 0, head + 2, rows.data());
    for (std::uint64_t i = head > 3 ? head - 3 : 0; i < head + 1; ++i) (void)c.read(i, rows.data());
    (void)c.state();
    (void)c.wait(std::chrono::nanoseconds(0), cbuf::Idle::kBusySpin);
  } catch (const cbuf::Error&) {
    // refused cleanly (kTruncated once the file shrank)
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Pristine& p = pristine();
  const int fd = ::open(p.path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return 0;
  restore(fd, p.bytes);
  auto* map = static_cast<std::byte*>(::mmap(nullptr, p.bytes.size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  if (map == MAP_FAILED) std::abort();
  {
    cbuf::RawConsumer c(p.path, cbuf::ConsumerOptions().attach_timeout(std::chrono::milliseconds(0)));
    std::vector<std::byte> rows(static_cast<std::size_t>(c.row_size()) * 8);
    bool truncated = false;
    for (std::size_t i = 0; i + 11 <= size; i += 11) {
      const std::uint8_t op = data[i] % 4;
      std::uint16_t at;
      std::uint64_t value;
      std::memcpy(&at, data + i + 1, 2);
      std::memcpy(&value, data + i + 3, 8);
      if (op <= 1 && !truncated) {  // our own mapping must not touch pages past a shrunk end either
        const std::size_t off = (at % (p.bytes.size() / 8)) * 8;
        std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(map + off)).store(value, std::memory_order_relaxed);
      } else if (op == 2) {
        if (::ftruncate(fd, static_cast<off_t>(at % (p.bytes.size() + 1))) != 0) std::abort();
        truncated = true;
      } else if (op == 3) {
        restore(fd, p.bytes);
        truncated = false;
      }
      read_round(c, rows);
    }
  }
  ::munmap(map, p.bytes.size());
  ::close(fd);
  return 0;
}
