// Boost.Interprocess message_queue (a mutex + condition variables in shared memory, from Debian's
// libboost-dev). Spin mode polls with try_receive; block mode sleeps in receive(). send() blocks when full.
#include "peers.hpp"

#ifdef CBUF_BENCH_HAVE_BOOST
#include <unistd.h>

#include <boost/interprocess/ipc/message_queue.hpp>
#include <string>
#endif

namespace bench {

#ifdef CBUF_BENCH_HAVE_BOOST
namespace {

namespace bip = boost::interprocess;

class BoostMqChannel final : public Channel {
 public:
  explicit BoostMqChannel(std::size_t bytes)
      : bytes_(bytes), name_("cbuf_bench_mq_" + std::to_string(::getpid())) {
    bip::message_queue::remove(name_.c_str());
    mq_ = std::make_unique<bip::message_queue>(bip::create_only, name_.c_str(), 1024, bytes);
  }
  ~BoostMqChannel() override {
    mq_.reset();
    bip::message_queue::remove(name_.c_str());
  }
  void send(const std::byte* msg) override { mq_->send(msg, bytes_, 0); }
  bool try_recv(std::byte* out) override {
    bip::message_queue::size_type n;
    unsigned prio;
    return mq_->try_receive(out, bytes_, n, prio);
  }
  void recv(std::byte* out) override {
    bip::message_queue::size_type n;
    unsigned prio;
    mq_->receive(out, bytes_, n, prio);
  }

 private:
  std::size_t bytes_;
  std::string name_;
  std::unique_ptr<bip::message_queue> mq_;
};

}  // namespace
#endif

Peer peer_boost_mq() {
  Peer p;
  p.id = "boost_mq";
  p.name = "Boost.Interprocess message_queue";
#ifdef CBUF_BENCH_HAVE_BOOST
  p.make = [](std::size_t bytes) { return std::make_unique<BoostMqChannel>(bytes); };
#else
  p.unavailable = "Boost.Interprocess was not found at build time (./dev.sh bench-deps installs libboost-dev)";
#endif
  return p;
}

}  // namespace bench
