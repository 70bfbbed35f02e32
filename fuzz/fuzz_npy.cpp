// A .npy file (--calib-tokens): magic, version, header dict, data.
#include "core/io/npy.h"
#include "fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pipeprune;
  const auto path = fuzz::write_input("tokens.npy", data, size);
  fuzz::expect_clean([&] { read_npy(path); });
  return 0;
}
