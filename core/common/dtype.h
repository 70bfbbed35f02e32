// The storage dtypes pipeprune reads and writes (safetensors F32, F16, BF16).
#pragma once

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <optional>
#include <string>

namespace pipeprune {

enum class DType { kF32, kF16, kBF16 };

// "F32", "F16", "BF16": the safetensors spelling.
const char* safetensors_name(DType dtype);
// Parses the safetensors spelling; nullopt for any other dtype (I8, F64, ...).
std::optional<DType> dtype_from_safetensors(const std::string& name);
// "float32", "float16", "bfloat16": the config.json torch_dtype spelling.
const char* torch_dtype_name(DType dtype);
std::optional<DType> dtype_from_torch_name(const std::string& name);
// What a flag takes (--dtype, --out-dtype): "bf16", "fp16", "fp32" or a torch name above.
std::optional<DType> dtype_from_option(const std::string& name);
int64_t element_size(DType dtype);
c10::ScalarType to_scalar_type(DType dtype);
DType from_scalar_type(c10::ScalarType type);  // throws ConfigError for others

}  // namespace pipeprune
