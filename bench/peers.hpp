// The transports cbuf is compared against, behind one small interface so that every one is measured by the
// same code (bench_peers.cpp). Each peer lives in its own peer_*.cpp; peers whose library was not found at
// build time still register, with the reason they are skipped.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace bench {

// One producer thread calls send(); one consumer thread calls try_recv() (spin mode) or recv() (block mode).
// Messages are msg_bytes long; the first 8 bytes carry a sequence number or a timestamp.
class Channel {
 public:
  virtual ~Channel() = default;
  // Sends one message. Transports with flow control block while the consumer is behind; cbuf never does.
  virtual void send(const std::byte* msg) = 0;
  // Receives the next message into out if one is there; never sleeps.
  virtual bool try_recv(std::byte* out) = 0;
  // Receives the next message into out, sleeping in the transport's own blocking primitive until it arrives.
  virtual void recv(std::byte* out) = 0;
  // Receives up to max messages (max * msg_bytes into out) without sleeping; returns how many. A transport
  // with a batch API uses it (cbuf: read_new); the others receive one message at a time.
  virtual std::size_t try_recv_batch(std::byte* out, std::size_t max) { return max > 0 && try_recv(out) ? 1 : 0; }
};

struct Peer {
  std::string id;    // stable key in the JSON records (bench/run.py matches on it): cbuf, floor_spin, ...
  std::string name;  // for people: "Unix domain socket", "iceoryx 2.0.5"
  bool throughput = true;      // a transport (floors are latency-only)
  bool spinning = true;        // measured with a polling consumer
  bool blocking = true;        // measured with a consumer asleep in the transport's blocking receive
  std::function<std::unique_ptr<Channel>(std::size_t msg_bytes)> make;
  // Peers that keep per-process state with a daemon (iceoryx: the runtime registers with RouDi) are measured
  // in a child process per run; prepare() runs once in the parent first (starts the daemon), returning "" or
  // why the peer cannot run.
  bool isolate = false;
  std::function<std::string()> prepare;
  std::string unavailable;     // non-empty: not built or not runnable here, and why
};

// Shared-memory directory for cbuf rings made by the benchmark.
const std::string& shm_dir();

Peer peer_cbuf();
Peer peer_floor_spin();   // one shared slot + sequence word: the cache-line ping-pong floor
Peer peer_floor_futex();  // the same slot, consumer asleep in FUTEX_WAIT: the raw futex floor
Peer peer_uds();
Peer peer_zmq();
Peer peer_boost_mq();
Peer peer_iceoryx();

// Stops what prepare() started (iceoryx's RouDi daemon).
void peers_shutdown();

}  // namespace bench
