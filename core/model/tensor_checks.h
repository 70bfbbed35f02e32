// Checking a checkpoint's tensor against the shape config.json implies (shared by the weight
// loaders and ModelSpec so both report a mismatch in the same words).
#pragma once

#include "core/io/safetensors.h"
#include "core/model/layer_weights.h"

namespace pipeprune {

// The tensor's header entry; FormatError naming the folder and the tensor when it is absent
// or its shape differs from expected.shape.
TensorInfo require_tensor(const SafetensorsCheckpoint& checkpoint, const ExpectedTensor& expected);

}  // namespace pipeprune
