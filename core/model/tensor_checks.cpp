#include "core/model/tensor_checks.h"

#include "core/common/error.h"
#include "core/common/shape_text.h"

namespace pipeprune {

TensorInfo require_tensor(const SafetensorsCheckpoint& checkpoint, const ExpectedTensor& expected) {
  const std::optional<TensorInfo> info = checkpoint.find(expected.name);
  PIPEPRUNE_CHECK(info.has_value(), FormatError,
                  checkpoint.dir().string() << ": tensor " << expected.name << " is missing; config.json implies "
                                            << "it with shape " << shape_text(expected.shape)
                                            << " (is config.json from the same model?)");
  PIPEPRUNE_CHECK(info->shape == expected.shape, FormatError,
                  checkpoint.dir().string() << ": " << expected.name << " has shape " << shape_text(info->shape)
                                            << "; config.json implies " << shape_text(expected.shape)
                                            << " (is config.json from the same model?)");
  return *info;
}

}  // namespace pipeprune
