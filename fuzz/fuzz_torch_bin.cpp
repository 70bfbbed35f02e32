// A torch.save archive (pytorch_model.bin): zip directory, data.pkl's pickle, storages.
#include <ATen/ATen.h>

#include "core/io/safetensors.h"
#include "fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pipeprune;
  const auto path = fuzz::write_input("pytorch_model.bin", data, size);
  fuzz::expect_clean([&] {
    const auto file = SafetensorsFile::open_pytorch_bin(path);
    for (const TensorInfo& info : file->tensors()) {
      if (info.n_bytes <= (64 << 20)) file->load(info);
    }
  });
  return 0;
}
