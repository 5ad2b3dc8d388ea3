// cbuf itself and the two floors: a single shared slot polled by the consumer, and the same slot with the
// consumer asleep in FUTEX_WAIT. The floors are the least any shared-memory transport can cost between two
// cores: one copy in, a release store, the cache-line transfers, one copy out.
#include <atomic>
#include <chrono>
#include <cstring>
#include <vector>

#include <cbuf/cbuf.hpp>

#include "peers.hpp"

namespace bench {

const std::string& shm_dir() {
  static const std::string dir = cbuf::os::default_dir();
  return dir;
}

namespace {

// Configured as docs/tuning.md advises for latency: both sides prefault the ring.
class CbufChannel final : public Channel {
 public:
  explicit CbufChannel(std::size_t bytes)
      : producer_(cbuf::ProducerOptions()
                      .dir(shm_dir())
                      .capacity((1u << 20) / cbuf::slot_size_for(static_cast<std::uint32_t>(bytes)))
                      .on_close(cbuf::OnClose::kUnlink)
                      .prefault(true),
                  static_cast<std::uint32_t>(bytes)),
        consumer_(producer_.path(), cbuf::ConsumerOptions().prefault(true)) {}
  void send(const std::byte* msg) override { producer_.write(msg); }
  bool try_recv(std::byte* out) override { return consumer_.try_next(out).has_row; }
  std::size_t try_recv_batch(std::byte* out, std::size_t max) override { return consumer_.read_new(out, max).count; }
  void recv(std::byte* out) override {
    while (!consumer_.try_next(out).has_row) consumer_.wait(std::chrono::seconds(1), cbuf::Idle::kBlock);
  }

 private:
  cbuf::RawProducer producer_;
  cbuf::RawConsumer consumer_;
};

// One slot: a sequence word and the message, each on cache lines of its own, and the consumer's state on
// another. Latency runs are paced by an acknowledgement, so the slot is never overwritten before it is read.
class SlotChannel final : public Channel {
 public:
  SlotChannel(std::size_t bytes, bool futex) : bytes_(bytes), futex_(futex), msg_((bytes + 63) / 64) {}
  void send(const std::byte* msg) override {
    std::memcpy(msg_.data()->b, msg, bytes_);
    seq_.v.store(seq_.v.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    if (futex_) cbuf::os::futex_wake_all(reinterpret_cast<std::uint32_t*>(&seq_.v));
  }
  bool try_recv(std::byte* out) override {
    const std::uint32_t s = seq_.v.load(std::memory_order_acquire);
    if (s == seen_.v) return false;
    std::memcpy(out, msg_.data()->b, bytes_);
    seen_.v = s;
    return true;
  }
  void recv(std::byte* out) override {
    while (!try_recv(out))
      cbuf::os::futex_wait(reinterpret_cast<const std::uint32_t*>(&seq_.v), seen_.v, std::chrono::seconds(1));
  }

 private:
  struct alignas(64) Word {
    std::atomic<std::uint32_t> v{0};
  };
  struct alignas(64) Private {
    std::uint32_t v = 0;
  };
  struct alignas(64) Line {
    std::byte b[64];
  };
  const std::size_t bytes_;
  const bool futex_;
  std::vector<Line> msg_;  // read-only after construction: the pointer and size never change
  Word seq_;
  Private seen_;           // the consumer's alone
};

}  // namespace

Peer peer_cbuf() {
  Peer p;
  p.id = p.name = "cbuf";
  p.make = [](std::size_t bytes) { return std::make_unique<CbufChannel>(bytes); };
  return p;
}

namespace {
// The floors measure latency only, each in the one mode it stands for.
Peer slot_floor(const char* id, const char* name, bool futex) {
  Peer p;
  p.id = id;
  p.name = name;
  p.throughput = false;
  p.spinning = !futex;
  p.blocking = futex;
  p.make = [futex](std::size_t bytes) { return std::make_unique<SlotChannel>(bytes, futex); };
  return p;
}
}  // namespace

Peer peer_floor_spin() { return slot_floor("floor_spin", "floor: cache-line ping-pong", false); }
Peer peer_floor_futex() { return slot_floor("floor_futex", "floor: raw futex", true); }

}  // namespace bench
