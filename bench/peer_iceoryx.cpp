// iceoryx 2.0 (Debian's iceoryx + libiceoryx-posh-dev): untyped publisher/subscriber, loan + copy + publish,
// take + copy + release. Lossless (WAIT_FOR_CONSUMER / BLOCK_PRODUCER), the configuration a user comparing
// against a lossless queue would pick. Spin mode polls take(); block mode sleeps in a WaitSet. The benchmark
// starts its own RouDi daemon (iox-roudi from PATH) before the first channel and stops it at exit.
#include "peers.hpp"

#ifdef CBUF_BENCH_HAVE_ICEORYX
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include "iceoryx_hoofs/log/logmanager.hpp"
#include "iceoryx_posh/popo/untyped_publisher.hpp"
#include "iceoryx_posh/popo/untyped_subscriber.hpp"
#include "iceoryx_posh/popo/wait_set.hpp"
#include "iceoryx_posh/runtime/posh_runtime.hpp"
#endif

namespace bench {

#ifdef CBUF_BENCH_HAVE_ICEORYX
namespace {

pid_t g_roudi = -1;
constexpr const char* kRoudiLog = "/tmp/cbuf-bench-roudi.log";  // RouDi's output; removed when it stops

// Starts iox-roudi and waits for "RouDi is ready for clients" on its output. Returns "" or why it failed.
std::string start_roudi() {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return std::string("pipe: ") + std::strerror(errno);
  const pid_t pid = ::fork();
  if (pid < 0) return std::string("fork: ") + std::strerror(errno);
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive the benchmark
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    ::execlp("iox-roudi", "iox-roudi", "-l", "info", static_cast<char*>(nullptr));
    std::printf("cannot run iox-roudi: %s\n", std::strerror(errno));
    std::fflush(stdout);
    ::_exit(127);
  }
  ::close(out[1]);
  g_roudi = pid;
  std::string log;
  char buf[256];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof buf)) > 0) {
    log.append(buf, static_cast<std::size_t>(n));
    if (log.find("RouDi is ready for clients") != std::string::npos) break;
  }
  // Keep draining RouDi's output (into kRoudiLog) so that it never blocks on a full pipe.
  std::thread([fd = out[0], log] {
    FILE* f = std::fopen(kRoudiLog, "w");
    if (f) std::fputs(log.c_str(), f);
    char buf[256];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0)
      if (f) std::fwrite(buf, 1, static_cast<std::size_t>(n), f), std::fflush(f);
    if (f) std::fclose(f);
    ::close(fd);
  }).detach();
  if (log.find("RouDi is ready for clients") == std::string::npos) {
    ::waitpid(pid, nullptr, 0);
    g_roudi = -1;
    while (!log.empty() && log.back() == '\n') log.pop_back();
    return "iox-roudi did not start (is another RouDi running?): " + log.substr(log.rfind('\n') + 1);
  }
  return "";
}

// The runtime registers this process with RouDi; it is only ever initialised in the per-run child process,
// so that the child deregisters when it exits and RouDi can then be stopped without signalling anyone.
void init_runtime() {
  static const bool once = [] {
    iox::log::LogManager::GetLogManager().SetDefaultLogLevel(iox::log::LogLevel::kWarn,
                                                             iox::log::LogLevelOutput::kHideLogLevel);
    const std::string name = "cbuf-bench-" + std::to_string(::getpid());
    iox::runtime::PoshRuntime::initRuntime(iox::RuntimeName_t(iox::cxx::TruncateToCapacity, name.c_str()));
    return true;
  }();
  (void)once;
}

class IceoryxChannel final : public Channel {
 public:
  explicit IceoryxChannel(std::size_t bytes)
      : bytes_(static_cast<std::uint32_t>(bytes)),
        service_(service(bytes)),
        pub_(service_, publisher_options()),
        sub_(service_, subscriber_options()) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (sub_.getSubscriptionState() != iox::SubscribeState::SUBSCRIBED || !pub_.hasSubscribers()) {
      if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("iceoryx: subscription timed out");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    waitset_.attachState(sub_, iox::popo::SubscriberState::HAS_DATA).or_else([](auto) {
      throw std::runtime_error("iceoryx: cannot attach the subscriber to a WaitSet");
    });
  }
  void send(const std::byte* msg) override {
    pub_.loan(bytes_)
        .and_then([&](void* chunk) {
          std::memcpy(chunk, msg, bytes_);
          pub_.publish(chunk);
        })
        .or_else([](auto) { throw std::runtime_error("iceoryx: loan failed"); });
  }
  bool try_recv(std::byte* out) override {
    bool got = false;
    sub_.take().and_then([&](const void* chunk) {
      std::memcpy(out, chunk, bytes_);
      sub_.release(chunk);
      got = true;
    });
    return got;
  }
  void recv(std::byte* out) override {
    while (!try_recv(out)) waitset_.wait();
  }

 private:
  // A new service for every channel, so that no two runs share a queue.
  static iox::capro::ServiceDescription service(std::size_t bytes) {
    static int n = 0;
    return {"cbuf-bench", iox::capro::IdString_t(iox::cxx::TruncateToCapacity, std::to_string(bytes).c_str()),
            iox::capro::IdString_t(iox::cxx::TruncateToCapacity, std::to_string(n++).c_str())};
  }
  static iox::popo::PublisherOptions publisher_options() {
    iox::popo::PublisherOptions o;
    o.subscriberTooSlowPolicy = iox::popo::ConsumerTooSlowPolicy::WAIT_FOR_CONSUMER;
    return o;
  }
  static iox::popo::SubscriberOptions subscriber_options() {
    iox::popo::SubscriberOptions o;
    o.queueFullPolicy = iox::popo::QueueFullPolicy::BLOCK_PRODUCER;
    return o;
  }
  std::uint32_t bytes_;
  iox::capro::ServiceDescription service_;
  iox::popo::UntypedPublisher pub_;
  iox::popo::UntypedSubscriber sub_;
  iox::popo::WaitSet<> waitset_;  // declared last: detached before the subscriber goes
};

}  // namespace
#endif

Peer peer_iceoryx() {
  Peer p;
  p.id = "iceoryx";
#ifdef CBUF_BENCH_HAVE_ICEORYX
  p.name = "iceoryx " CBUF_BENCH_ICEORYX_VERSION;
  p.isolate = true;
  p.prepare = [] {
    static const std::string why = start_roudi();
    return why;
  };
  p.make = [](std::size_t bytes) -> std::unique_ptr<Channel> {
    init_runtime();
    return std::make_unique<IceoryxChannel>(bytes);
  };
#else
  p.name = "iceoryx";
  p.unavailable = "iceoryx was not found at build time (./dev.sh bench-deps installs iceoryx and libiceoryx-posh-dev)";
#endif
  return p;
}

void peers_shutdown() {
#ifdef CBUF_BENCH_HAVE_ICEORYX
  if (g_roudi > 0) {
    ::kill(g_roudi, SIGTERM);
    ::waitpid(g_roudi, nullptr, 0);
    g_roudi = -1;
    ::unlink(kRoudiLog);
  }
#endif
}

}  // namespace bench
