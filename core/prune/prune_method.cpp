// The method names of --method and the statistics each method keeps per linear.
#include <cstdint>
#include <string>

#include "core/common/error.h"
#include "core/prune/pruner.h"

namespace pipeprune {

PruneMethod parse_prune_method(const std::string& name) {
  if (name == "magnitude") return PruneMethod::kMagnitude;
  if (name == "wanda") return PruneMethod::kWanda;
  if (name == "sparsegpt") return PruneMethod::kSparseGPT;
  PIPEPRUNE_FAIL(ConfigError,
                 "--method '" << name << "' is not recognised; use magnitude, wanda or sparsegpt");
}

const char* prune_method_name(PruneMethod method) {
  switch (method) {
    case PruneMethod::kMagnitude:
      return "magnitude";
    case PruneMethod::kWanda:
      return "wanda";
    case PruneMethod::kSparseGPT:
      return "sparsegpt";
  }
  return "unknown";
}

int64_t pruner_statistics_bytes(PruneMethod method, int64_t cols) {
  PIPEPRUNE_CHECK(cols >= 0, Error, "pruner_statistics_bytes: negative column count " << cols);
  constexpr int64_t kFloatBytes = 4;
  switch (method) {
    case PruneMethod::kMagnitude:
      return 0;
    case PruneMethod::kWanda:
      return cols * kFloatBytes;  // scaler_row
    case PruneMethod::kSparseGPT:
      return cols * cols * kFloatBytes;  // H
  }
  return 0;
}

}  // namespace pipeprune
