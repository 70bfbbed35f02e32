// How the target sparsity is spread over the decoder layers: the same everywhere (uniform), by
// OWL's outlier-weighted recipe, or a list the user brings (one ratio per layer).
//
// OWL (Yin et al., ICML 2024; luuyin/OWL lib/prune_all.py, ../shared/OWL_SEMANTICS.md): a pass
// over the dense model measures each layer's outlier density D_l (outlier_density.h); layers
// with more outliers keep more weights. The ratios come from the original's numpy float64
// expression, step by step:
//   r = (D - min D) * (1 / (max D - min D) * lambda * 2)      (min-max into [0, 2 lambda])
//   r = r - mean(r) + (1 - S)                                  (mean density 1 - S)
//   s_l = 1 - r_l; s_l <= 0 becomes 0.01                       (the wanda/sparsegpt clamp)
// Where we differ from llm-compressor (its statistic, its missing clamp), we follow the original.
// With an N:M pattern the original computes the ratios and then prunes every layer N:M: so do
// we (the ratios are reported, not applied).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/prune/sparsity_pattern.h"

namespace pipeprune {

struct SparsityProfile {
  enum class Kind { kUniform, kOwl, kExplicit };
  Kind kind = Kind::kUniform;
  double owl_lambda = 0.08;  // the original's --Lamda (its README's value and main.py's default)
  double owl_m = 5;          // the original's --Hyper_m (its README scripts' value; main.py's default is 3)
  std::vector<double> layer_sparsity;  // kExplicit: one target per decoder layer

  // ConfigError naming the flag: --owl-lambda/--owl-m out of range, --layer-sparsity values out
  // of [0, 1) or given with another profile, a profile that does not fit the method or pattern
  // (OWL needs calibration: wanda or sparsegpt; explicit ratios need unstructured sparsity).
  void validate(const SparsityPattern& pattern, bool calibrated) const;
  // validate(), and that an explicit list has one ratio per decoder layer.
  void validate(const SparsityPattern& pattern, bool calibrated, int64_t n_layers) const;
  bool needs_outlier_pass() const { return kind == Kind::kOwl; }
};

// "uniform" | "owl" | "explicit"; ConfigError naming --sparsity-profile otherwise.
SparsityProfile::Kind parse_sparsity_profile(const std::string& name);
const char* sparsity_profile_name(SparsityProfile::Kind kind);

// OWL's per-layer sparsity from the layers' outlier densities (percent) and the target
// sparsity S (see the top of this file). ConfigError when every layer has the same density (the
// original divides by zero there) or when a ratio reaches 1 (lower --owl-lambda or --sparsity).
std::vector<double> owl_layer_sparsity(const std::vector<double>& outlier_percent, double sparsity, double lambda);

// The target of every layer as the pruners apply it: `pattern.sparsity` everywhere for uniform
// and for any N:M pattern; else `ratios` (OWL's or the user's).
std::vector<double> applied_layer_sparsity(const SparsityPattern& pattern, const std::vector<double>& ratios,
                                           int64_t n_layers);

}  // namespace pipeprune
