// config.json: the JSON itself, then every field ModelConfig reads and checks.
#include "core/model/model_config.h"
#include "fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pipeprune;
  const auto path = fuzz::write_input("config.json", data, size);
  fuzz::expect_clean([&] { ModelConfig::from_file(path); });
  return 0;
}
