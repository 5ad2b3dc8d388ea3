// cbuf/state.hpp - what producers and consumers both need to know about a buffer's producer and rows: the
// producer's state as readers see it, a holder's description for "already exists" errors, and the concept of a
// generated row type. Below both producer.hpp and consumer.hpp, so neither includes the other.
#pragma once

#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cbuf/detail/schema_json.hpp"
#include "cbuf/format.hpp"
#include "cbuf/os.hpp"

namespace cbuf {

// The producer as a consumer sees it. kDead: the state says live but the producing process (pid and start
// time, so pid reuse cannot fool it) no longer exists.
enum class ProducerState : std::uint8_t { kLive, kClosed, kDead, kReplaced };

constexpr std::string_view to_string(ProducerState s) noexcept {
  switch (s) {
    case ProducerState::kLive: return "live";
    case ProducerState::kClosed: return "closed";
    case ProducerState::kDead: return "dead";
    case ProducerState::kReplaced: return "replaced";
  }
  return "unknown";
}

// The state word (any value: it comes from shared memory) and the producer's identity, as a ProducerState.
inline ProducerState producer_state(std::uint32_t state_word, std::uint32_t pid, std::uint64_t start_time) {
  if (state_word == static_cast<std::uint32_t>(State::kClosed)) return ProducerState::kClosed;
  if (state_word == static_cast<std::uint32_t>(State::kReplaced)) return ProducerState::kReplaced;
  return os::process_alive(pid, start_time) ? ProducerState::kLive : ProducerState::kDead;
}

// Rows generated from a schema carry their schema: `static constexpr std::string_view kSchemaJson`,
// `kSchemaName` and `static constexpr std::uint64_t kFingerprint`.
template <class Row>
concept SchemaRow = requires {
  { Row::kSchemaJson } -> std::convertible_to<std::string_view>;
  { Row::kSchemaName } -> std::convertible_to<std::string_view>;
  { Row::kFingerprint } -> std::convertible_to<std::uint64_t>;
};

namespace detail {

// "already exists, held by producer pid P (state, epoch E, schema 'S');" for the buffer file at `path`, read
// with plain reads (no mapping) and checked like any attach; just "already exists;" if it is not a readable
// cbuf buffer. `state`, if given, receives the holder's state (untouched if there is no readable buffer).
inline std::string describe_holder(const std::string& path, std::optional<ProducerState>* state = nullptr) {
  std::string holder;
  try {
    os::OpenedFile f = os::open_readonly(path);
    Header h{};
    if (f.size >= kHeaderSize && os::read_at(f.fd.get(), &h, sizeof h, 0) &&
        h.magic == kMagic) {
      const Layout l = validate_header(h, f.size, path);
      std::string schema(l.schema_size, '\0');
      std::string name;
      if (os::read_at(f.fd.get(), schema.data(), schema.size(), l.schema_offset)) {
        const auto j = parse_schema_json(schema, path);
        if (auto it = j.find("name"); it != j.end() && it->is_string()) name = it->get<std::string>();
      }
      const ProducerState st = producer_state(h.state, h.producer_pid, h.producer_start_time);
      if (state) *state = st;
      holder = ", held by producer pid " + std::to_string(h.producer_pid) + " (" + std::string(to_string(st)) +
               ", epoch " + std::to_string(h.epoch) + ", schema '" + name + "')";
    }
  } catch (const Error&) {
  }
  return "already exists" + holder + ";";
}

}  // namespace detail
}  // namespace cbuf
