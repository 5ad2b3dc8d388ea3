// libFuzzer target: any bytes, as a buffer file, go through the consumer's whole attach path (open, header
// publication, bounds checks, schema JSON limits) and, when accepted, every read. Anything but a clean
// cbuf::Error or a correct read - a crash, a sanitizer report, a read outside the mapping - is a finding.
//   short run:  cbuf_fuzz_attach -max_total_time=20 CORPUS_DIR   (./dev.sh test does this)
//   long run:   cbuf_fuzz_attach -jobs=2 -max_total_time=3600 CORPUS_DIR
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include <cbuf/cbuf.hpp>

namespace {
const std::string& input_path() {
  static const std::string dir = [] {
    std::string d = "/dev/shm/cbuf-fuzz-" + std::to_string(::getpid());
    ::mkdir(d.c_str(), 0700);
    return d;
  }();
  static const std::string path = dir + "/input";
  return path;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = input_path();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return 0;
  for (std::size_t off = 0; off < size;) {
    const ssize_t n = ::write(fd, data + off, size - off);
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
  ::close(fd);
  try {
    cbuf::RawConsumer c(path, cbuf::ConsumerOptions().attach_timeout(std::chrono::milliseconds(0)));
    std::vector<std::byte> rows(static_cast<std::size_t>(c.row_size()) * 4);
    const std::uint64_t head = c.head();
    (void)c.latest(rows.data());
    (void)c.last(4, rows.data());
    (void)c.read_new(rows.data(), 4);
    for (std::uint64_t i = head > 3 ? head - 3 : 0; i < head + 1; ++i) (void)c.read(i, rows.data());
    (void)c.state();
  } catch (const cbuf::Error&) {
    // refused cleanly
  }
  return 0;
}
