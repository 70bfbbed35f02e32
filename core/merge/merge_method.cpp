#include "core/merge/merge_method.h"

#include <cmath>
#include <cstddef>

#include "core/common/error.h"

namespace pipeprune {

bool is_merge_method_name(const std::string& name) {
  for (const char* known : {"linear", "task_arithmetic", "ties", "dare_ties", "dare_linear", "dare_task_arithmetic"}) {
    if (name == known) return true;
  }
  return false;
}

MergeMethod parse_merge_method(const std::string& name) {
  if (name == "linear") return MergeMethod::kLinear;
  if (name == "task_arithmetic") return MergeMethod::kTaskArithmetic;
  if (name == "ties") return MergeMethod::kTies;
  if (name == "dare_ties") return MergeMethod::kDareTies;
  // mergekit never had "dare_task_arithmetic", but DARE papers and model cards use the name for
  // what mergekit calls dare_linear (DARE drop, task arithmetic, no election).
  if (name == "dare_linear" || name == "dare_task_arithmetic") return MergeMethod::kDareLinear;
  PIPEPRUNE_FAIL(ConfigError, "--method: unknown merge method '"
                                  << name << "' (use linear, task_arithmetic, ties, dare_ties or dare_linear)");
}

std::string merge_method_name(MergeMethod method) {
  switch (method) {
    case MergeMethod::kLinear: return "linear";
    case MergeMethod::kTaskArithmetic: return "task_arithmetic";
    case MergeMethod::kTies: return "ties";
    case MergeMethod::kDareTies: return "dare_ties";
    case MergeMethod::kDareLinear: return "dare_linear";
  }
  PIPEPRUNE_FAIL(Error, "merge_method_name: invalid MergeMethod " << static_cast<int>(method));
}

Rescale parse_rescale(const std::string& name) {
  if (name == "none") return Rescale::kNone;
  if (name == "l1") return Rescale::kL1;
  if (name == "inv_density") return Rescale::kInvDensity;
  PIPEPRUNE_FAIL(ConfigError, "--rescale: unknown rescale '" << name << "' (use none, l1 or inv_density)");
}

std::string rescale_name(Rescale rescale) {
  switch (rescale) {
    case Rescale::kNone: return "none";
    case Rescale::kL1: return "l1";
    case Rescale::kInvDensity: return "inv_density";
  }
  PIPEPRUNE_FAIL(Error, "rescale_name: invalid Rescale " << static_cast<int>(rescale));
}

Consensus parse_consensus(const std::string& name) {
  if (name == "sum") return Consensus::kSum;
  if (name == "count") return Consensus::kCount;
  PIPEPRUNE_FAIL(ConfigError, "--consensus: unknown consensus '" << name << "' (use sum or count)");
}

std::string consensus_name(Consensus consensus) {
  switch (consensus) {
    case Consensus::kNone: return "none";
    case Consensus::kSum: return "sum";
    case Consensus::kCount: return "count";
  }
  PIPEPRUNE_FAIL(Error, "consensus_name: invalid Consensus " << static_cast<int>(consensus));
}

MergeSettings default_settings(MergeMethod method) {
  // mergekit's registry.py: each method's consensus and sparsification are fixed, normalize and
  // rescale are parameters with these defaults.
  MergeSettings settings;
  settings.method = method;
  switch (method) {
    case MergeMethod::kLinear:
      settings.normalize = true;
      break;
    case MergeMethod::kTaskArithmetic:
      settings.normalize = false;
      break;
    case MergeMethod::kTies:
      settings.consensus = Consensus::kSum;
      settings.normalize = true;
      break;
    case MergeMethod::kDareTies:
      settings.consensus = Consensus::kSum;
      settings.normalize = false;
      settings.rescale = Rescale::kL1;
      break;
    case MergeMethod::kDareLinear:
      settings.normalize = false;
      settings.rescale = Rescale::kL1;
      break;
  }
  return settings;
}

bool uses_base(MergeMethod method) { return method != MergeMethod::kLinear; }

bool uses_density(MergeMethod method) {
  return method == MergeMethod::kTies || method == MergeMethod::kDareTies || method == MergeMethod::kDareLinear;
}

bool uses_consensus(MergeMethod method) { return method == MergeMethod::kTies || method == MergeMethod::kDareTies; }

void validate_merge(const MergeSettings& settings, const std::vector<ModelParams>& params) {
  const std::string method = merge_method_name(settings.method);
  PIPEPRUNE_CHECK(!params.empty(), ConfigError, "--weights: " << method << " needs at least one model to merge");
  for (size_t i = 0; i < params.size(); ++i) {
    PIPEPRUNE_CHECK(std::isfinite(params[i].weight), ConfigError,
                    "--weights: weight " << params[i].weight << " of model " << i << " is not a finite number");
    // A density of 0 would drop the whole task vector (mergekit asserts k > 0), above 1 it means
    // nothing: both are typos.
    PIPEPRUNE_CHECK(params[i].density > 0.0 && params[i].density <= 1.0, ConfigError,
                    "--density: density " << params[i].density << " of model " << i << " must lie in (0, 1]");
  }
  PIPEPRUNE_CHECK(settings.consensus == Consensus::kNone || uses_consensus(settings.method), ConfigError,
                  "--consensus: " << method << " elects no sign; use --consensus only with ties or dare_ties");
  PIPEPRUNE_CHECK(std::isfinite(settings.lambda), ConfigError,
                  "--lambda: " << settings.lambda << " is not a finite number");
  if (settings.method == MergeMethod::kLinear && settings.normalize) {
    // The sum merge_tensor divides by: fp32 weights added left to right, as mergekit's
    // weights.sum(dim=0) does. mergekit has no guard, so the output would be inf/NaN.
    float sum = 0.0f;
    for (const ModelParams& p : params) sum += static_cast<float>(p.weight);
    PIPEPRUNE_CHECK(sum != 0.0f, ConfigError,
                    "--weights: linear with normalize divides by the weights' sum, which is 0; "
                    "change the weights or turn normalize off");
  }
}

}  // namespace pipeprune
