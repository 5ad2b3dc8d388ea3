// ZeroMQ PAIR sockets over ipc:// (libzmq from Debian's libzmq3-dev). Spin mode polls with ZMQ_DONTWAIT;
// block mode sleeps in zmq_recv(). The default high-water mark (1000 messages) gives flow control.
#include "peers.hpp"

#ifdef CBUF_BENCH_HAVE_ZMQ
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <stdexcept>
#include <string>
#endif

namespace bench {

#ifdef CBUF_BENCH_HAVE_ZMQ
namespace {

[[noreturn]] void fail(const char* what) {
  throw std::runtime_error(std::string("zmq: ") + what + ": " + zmq_strerror(zmq_errno()));
}

class ZmqChannel final : public Channel {
 public:
  explicit ZmqChannel(std::size_t bytes) : bytes_(bytes) {
    const std::string endpoint = "ipc://" + shm_dir() + "/cbuf_bench_zmq_" + std::to_string(::getpid());
    ctx_ = zmq_ctx_new();
    rx_ = zmq_socket(ctx_, ZMQ_PAIR);
    tx_ = zmq_socket(ctx_, ZMQ_PAIR);
    if (!ctx_ || !rx_ || !tx_) fail("socket");
    if (zmq_bind(rx_, endpoint.c_str()) != 0) fail("bind");
    if (zmq_connect(tx_, endpoint.c_str()) != 0) fail("connect");
    path_ = endpoint.substr(6);
  }
  ~ZmqChannel() override {
    int zero = 0;
    zmq_setsockopt(tx_, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(rx_, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(tx_);
    zmq_close(rx_);
    zmq_ctx_term(ctx_);
    ::unlink(path_.c_str());
  }
  void send(const std::byte* msg) override {
    while (zmq_send(tx_, msg, bytes_, 0) < 0)
      if (zmq_errno() != EINTR) fail("send");
  }
  bool try_recv(std::byte* out) override { return receive(out, ZMQ_DONTWAIT); }
  void recv(std::byte* out) override {
    while (!receive(out, 0)) {
    }
  }

 private:
  bool receive(std::byte* out, int flags) {
    const int n = zmq_recv(rx_, out, bytes_, flags);
    if (n == static_cast<int>(bytes_)) return true;
    if (n < 0 && (zmq_errno() == EAGAIN || zmq_errno() == EINTR)) return false;
    fail("recv");
  }
  std::size_t bytes_;
  void* ctx_ = nullptr;
  void* rx_ = nullptr;
  void* tx_ = nullptr;
  std::string path_;
};

}  // namespace
#endif

Peer peer_zmq() {
  Peer p;
  p.id = "zeromq";
  p.name = "ZeroMQ ipc://";
#ifdef CBUF_BENCH_HAVE_ZMQ
  p.make = [](std::size_t bytes) { return std::make_unique<ZmqChannel>(bytes); };
#else
  p.unavailable = "libzmq was not found at build time (./dev.sh bench-deps installs libzmq3-dev)";
#endif
  return p;
}

}  // namespace bench
