// Writes N rows to each of the three buffers (in DIR), row i carrying i in every schema, then closes them.
#include <robot_state.hpp>
#include <sensor_v2.hpp>
#include <waveform.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) try {
  const std::string dir = argv[1];
  const int n = std::atoi(argv[2]);
  robot_state::Producer robot(robot_state::default_options().dir(dir));
  sensor_v2::Producer odd(sensor_v2::default_options().dir(dir));
  waveform::Producer scope(waveform::default_options().dir(dir));
  for (int i = 0; i < n; ++i) {
    robot_state::Row& r = robot.claim();
    r = {};
    r.stamp = 1000 + i;
    r.position = {1.0 * i, 2.0, 3.0};
    r.orientation[3] = 1.0;
    r.battery = 24.5f;
    r.estop = i % 2 == 1;
    cbuf::set_string(r.frame_id, "map");
    robot.commit();
    sensor_v2::Row o{};
    o.Row = static_cast<std::uint8_t>(i);
    o.count = -i;
    o.id = static_cast<std::uint64_t>(i);
    o.print = true;
    cbuf::set_string(o.value, "hello");
    odd.write(o);
    waveform::Row& w = scope.claim();
    for (int k = 0; k < 4096; ++k) w.trace[k] = static_cast<float>(i) + static_cast<float>(k) / 4096.0f;
    w.t = i;
    scope.commit();
  }
  std::printf("wrote %d rows to %s, %s and %s\n", n, robot.path().c_str(), odd.path().c_str(), scope.path().c_str());
  return 0;
} catch (const cbuf::Error& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
