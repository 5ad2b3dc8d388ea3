// A producer the Python tests drive through stdin, one command per line, each answered on stdout:
//   cbuf_pyprod PATH CAPACITY        create; prints "ready <path>"
//   write N        write N checksummed rows as fast as possible      -> "ok <head>"
//   pace N US      write N rows, sleeping US microseconds after each -> "ok <head>"
//   close          close the buffer (state closed)                   -> "ok closed"
//   exit           exit without closing (state reads dead afterwards)
// Rows are tests/cpp/common.hpp's CheckedRow (index, 6 payload words, checksum), schema "checked".
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

#include "common.hpp"

using cbuf_test::CheckedRow;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s PATH CAPACITY\n", argv[0]);
    return 2;
  }
  try {
    cbuf::Producer<CheckedRow> p(
        cbuf::ProducerOptions()
            .name(argv[1])
            .capacity(std::strtoull(argv[2], nullptr, 10))
            .schema_json(R"({"name":"checked","capacity":1,"row_size":64,"columns":[)"
                         R"({"name":"index","type":"uint64","offset":0},{"name":"payload","type":"uint64[6]","offset":8},)"
                         R"({"name":"checksum","type":"uint64","offset":56}]})"));
    std::printf("ready %s\n", p.path().c_str());
    std::fflush(stdout);
    std::string line;
    while (std::getline(std::cin, line)) {
      std::istringstream in(line);
      std::string cmd;
      std::uint64_t n = 0, us = 0;
      in >> cmd >> n >> us;
      if (cmd == "write" || cmd == "pace") {
        for (std::uint64_t i = 0; i < n; ++i) {
          p.write(CheckedRow::make(p.next_index()));
          if (cmd == "pace") std::this_thread::sleep_for(std::chrono::microseconds(us));
        }
        std::printf("ok %llu\n", static_cast<unsigned long long>(p.next_index()));
      } else if (cmd == "close") {
        p.close();
        std::printf("ok closed\n");
      } else if (cmd == "exit") {
        std::fflush(stdout);
        std::_Exit(0);  // no destructor: the buffer stays "live" with no process behind it
      } else {
        std::printf("error unknown command %s\n", cmd.c_str());
      }
      std::fflush(stdout);
    }
  } catch (const cbuf::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
