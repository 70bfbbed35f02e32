#include "core/common/dtype.h"

#include "core/common/error.h"

namespace pipeprune {

const char* safetensors_name(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
  }
  return "?";
}

std::optional<DType> dtype_from_safetensors(const std::string& name) {
  if (name == "F32") return DType::kF32;
  if (name == "F16") return DType::kF16;
  if (name == "BF16") return DType::kBF16;
  return std::nullopt;
}

const char* torch_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "float32";
    case DType::kF16: return "float16";
    case DType::kBF16: return "bfloat16";
  }
  return "?";
}

std::optional<DType> dtype_from_torch_name(const std::string& name) {
  if (name == "float32" || name == "float") return DType::kF32;
  if (name == "float16" || name == "half") return DType::kF16;
  if (name == "bfloat16") return DType::kBF16;
  return std::nullopt;
}

std::optional<DType> dtype_from_option(const std::string& name) {
  if (name == "fp32") return DType::kF32;
  if (name == "fp16") return DType::kF16;
  if (name == "bf16") return DType::kBF16;
  return dtype_from_torch_name(name);
}

int64_t element_size(DType dtype) { return dtype == DType::kF32 ? 4 : 2; }

c10::ScalarType to_scalar_type(DType dtype) {
  switch (dtype) {
    case DType::kF32: return c10::ScalarType::Float;
    case DType::kF16: return c10::ScalarType::Half;
    case DType::kBF16: return c10::ScalarType::BFloat16;
  }
  return c10::ScalarType::Float;
}

DType from_scalar_type(c10::ScalarType type) {
  switch (type) {
    case c10::ScalarType::Float: return DType::kF32;
    case c10::ScalarType::Half: return DType::kF16;
    case c10::ScalarType::BFloat16: return DType::kBF16;
    default: break;
  }
  PIPEPRUNE_FAIL(ConfigError, "unsupported tensor dtype " << c10::toString(type)
                                  << ": pipeprune stores F32, F16 or BF16");
}

}  // namespace pipeprune
