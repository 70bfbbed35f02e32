// What to prune and how: the method, the sparsity pattern, each method's settings, and the one
// place that checks them. The CLI, the prune job and the pruners all call validate(); every
// message about a bad pruning option is written here (and in SparsityPattern for its syntax).
#pragma once

#include <cstdint>
#include <string>

#include "core/prune/hinv_factor.h"
#include "core/prune/sparsity_pattern.h"

namespace pipeprune {

struct ModelConfig;

enum class PruneMethod { kMagnitude, kWanda, kSparseGPT };

// "magnitude" | "wanda" | "sparsegpt"; ConfigError naming --method otherwise.
PruneMethod parse_prune_method(const std::string& name);
const char* prune_method_name(PruneMethod method);
// Whether the method needs calibration activations at all (magnitude does not).
bool needs_activations(PruneMethod method);

struct PruneOptions {
  PruneMethod method = PruneMethod::kWanda;
  SparsityPattern pattern;
  bool use_variant = false;  // Wanda's --use_variant (unstructured only)
  int64_t blocksize = 128;   // SparseGPT column block size
  double percdamp = 0.01;    // SparseGPT damping, fraction of mean(diag H)
  HinvFactor hinv_factor = HinvFactor::kReference;  // SparseGPT's H^-1 factor (hinv_factor.h)

  // ConfigError naming the flag and what to do: --sparsity outside [0, 1), --use-variant where
  // it does not apply, --blocksize below 1 (or, for SparseGPT with N:M, not a multiple of M),
  // --percdamp negative or not finite, --hinv-factor blocked for a method other than sparsegpt.
  void validate() const;
  // validate(), and that an N:M pattern divides the input columns of every linear of the model.
  void validate(const ModelConfig& config) const;
};

// SparseGPT's own settings; sparsegpt_prune() checks them too, as it may be called directly.
void validate_sparsegpt_settings(const SparsityPattern& pattern, int64_t blocksize, double percdamp);

}  // namespace pipeprune
