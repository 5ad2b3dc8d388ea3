// Writes seed inputs for fuzz_attach: real buffer files of a few shapes (cbuf_fuzz_seed DIR).
#include <fstream>
#include <iterator>
#include <string>

#include <cbuf/cbuf.hpp>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::string out = argv[1];
  const std::string tmp = "/dev/shm/cbuf-fuzz-seed-" + std::to_string(::getpid());
  auto save = [&](const cbuf::RawProducer& p, const std::string& name) {
    std::ifstream in(p.path(), std::ios::binary);
    std::ofstream(out + "/" + name, std::ios::binary) << in.rdbuf();
  };
  std::uint64_t row[3] = {1, 2, 3};
  {
    cbuf::RawProducer p(cbuf::ProducerOptions().name(tmp + "-a").capacity(2).on_close(cbuf::OnClose::kUnlink), 8);
    for (int i = 0; i < 5; ++i) p.write(row);
    save(p, "wrapped");
  }
  {
    cbuf::RawProducer p(cbuf::ProducerOptions()
                            .name(tmp + "-b")
                            .capacity(3)
                            .on_close(cbuf::OnClose::kUnlink)
                            .schema_json(R"({"name":"s","capacity":3,"row_size":24,"columns":[{"name":"a","type":"uint64[3]","offset":0}]})")
                            .base_index(cbuf::kIndexLimit - 10),  // near the largest index
                        24);
    p.write(row);
    save(p, "schema_base");
  }
  return 0;
}
