// A Unix domain socket pair (SOCK_SEQPACKET: one message per datagram, in order, with flow control).
// Spin mode polls with MSG_DONTWAIT; block mode sleeps in recv().
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include "peers.hpp"

namespace bench {
namespace {

[[noreturn]] void fail(const char* what) { throw std::runtime_error(std::string("uds: ") + what + ": " + std::strerror(errno)); }

class UdsChannel final : public Channel {
 public:
  explicit UdsChannel(std::size_t bytes) : bytes_(bytes) {
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fd_) != 0) fail("socketpair");
  }
  ~UdsChannel() override {
    ::close(fd_[0]);
    ::close(fd_[1]);
  }
  void send(const std::byte* msg) override {
    while (::send(fd_[0], msg, bytes_, 0) < 0)
      if (errno != EINTR) fail("send");
  }
  bool try_recv(std::byte* out) override { return receive(out, MSG_DONTWAIT); }
  void recv(std::byte* out) override {
    while (!receive(out, 0)) {
    }
  }

 private:
  bool receive(std::byte* out, int flags) {
    const ssize_t n = ::recv(fd_[1], out, bytes_, flags);
    if (n == static_cast<ssize_t>(bytes_)) return true;
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
    fail("recv");
  }
  std::size_t bytes_;
  int fd_[2];
};

}  // namespace

Peer peer_uds() {
  Peer p;
  p.id = "uds";
  p.name = "Unix domain socket";
  p.make = [](std::size_t bytes) { return std::make_unique<UdsChannel>(bytes); };
  return p;
}

}  // namespace bench
