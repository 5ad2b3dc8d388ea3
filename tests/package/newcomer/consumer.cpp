// Reads the three buffers (in DIR) from their oldest rows and checks every row the producer wrote.
#include <robot_state.hpp>
#include <sensor_v2.hpp>
#include <waveform.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char** argv) try {
  const std::string dir = argv[1];
  const int n = std::atoi(argv[2]);
  const auto opts = cbuf::ConsumerOptions().dir(dir).start_index(0);
  robot_state::Consumer robot("robot_state", opts);
  sensor_v2::Consumer odd("sensor_v2", opts);
  waveform::Consumer scope("waveform", opts);
  int bad = 0, seen = 0;
  std::vector<waveform::Row> traces(16);
  for (int i = 0; i < n; ++i) {
    const auto r = robot.try_next();
    const auto o = odd.try_next();
    bad += !r || r->stamp != 1000 + i || r->position[0] != 1.0 * i || cbuf::get_string(r->frame_id) != "map";
    bad += !o || o->Row != static_cast<std::uint8_t>(i) || o->count != -i || cbuf::get_string(o->value) != "hello";
  }
  for (cbuf::Batch b; (b = scope.read_new(traces)).count > 0 || b.lost;) {
    for (std::size_t j = 0; j < b.count; ++j, ++seen) {
      const auto i = static_cast<float>(b.first + j);
      bad += traces[j].trace[0] != i || traces[j].trace[4095] != i + 4095.0f / 4096.0f;
    }
  }
  std::printf("checked %d rows of each, %d traces, %d bad\n", n, seen, bad);
  return bad == 0 && seen == n ? 0 : 1;
} catch (const cbuf::Error& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
