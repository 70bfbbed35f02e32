#include "core/prune/prune_options.h"

#include <cmath>

#include "core/common/error.h"
#include "core/model/layer_weights.h"
#include "core/model/model_config.h"

namespace pipeprune {

PruneMethod parse_prune_method(const std::string& name) {
  if (name == "magnitude") return PruneMethod::kMagnitude;
  if (name == "wanda") return PruneMethod::kWanda;
  if (name == "sparsegpt") return PruneMethod::kSparseGPT;
  PIPEPRUNE_FAIL(ConfigError, "--method '" << name << "' is not recognised; use magnitude, wanda or sparsegpt");
}

const char* prune_method_name(PruneMethod method) {
  switch (method) {
    case PruneMethod::kMagnitude: return "magnitude";
    case PruneMethod::kWanda: return "wanda";
    case PruneMethod::kSparseGPT: return "sparsegpt";
  }
  return "unknown";
}

bool needs_activations(PruneMethod method) { return method != PruneMethod::kMagnitude; }

void validate_sparsegpt_settings(const SparsityPattern& pattern, int64_t blocksize, double percdamp) {
  PIPEPRUNE_CHECK(blocksize >= 1, ConfigError,
                  "--blocksize " << blocksize << " must be at least 1 (the reference uses 128)");
  PIPEPRUNE_CHECK(std::isfinite(percdamp) && percdamp >= 0.0, ConfigError,
                  "--percdamp " << percdamp << " must be a finite fraction >= 0 (the reference uses 0.01)");
  PIPEPRUNE_CHECK(!pattern.is_nm() || blocksize % pattern.m == 0, ConfigError,
                  "--blocksize " << blocksize << " is not a multiple of M=" << pattern.m << " of --pattern "
                                 << pattern.to_string() << "; N:M groups restart at every block, so pick a multiple");
}

void PruneOptions::validate() const {
  if (!pattern.is_nm()) check_sparsity(pattern.sparsity);
  PIPEPRUNE_CHECK(!use_variant || (method == PruneMethod::kWanda && !pattern.is_nm()), ConfigError,
                  "--use-variant applies to --method wanda with unstructured sparsity only; drop it or use "
                  "--method wanda --pattern unstructured");
  // The SparseGPT settings are checked whatever the method: a bad value on the command line is
  // a mistake even where it would be ignored.
  validate_sparsegpt_settings(method == PruneMethod::kSparseGPT ? pattern : SparsityPattern{}, blocksize, percdamp);
  PIPEPRUNE_CHECK(hinv_factor == HinvFactor::kReference || method == PruneMethod::kSparseGPT, ConfigError,
                  "--hinv-factor " << hinv_factor_name(hinv_factor) << " applies to --method sparsegpt only; drop it");
}

void PruneOptions::validate(const ModelConfig& config) const {
  validate();
  for (LinearKind kind : layer_linears(config)) {
    pattern.check_columns(linear_shape(config, kind)[1],
                          std::string("model.layers.*.") + linear_name(config, kind) + ".weight");
  }
}

}  // namespace pipeprune
