#include "core/prune/sparsity_profile.h"

#include <algorithm>
#include <cmath>

#include "core/common/error.h"

namespace pipeprune {

SparsityProfile::Kind parse_sparsity_profile(const std::string& name) {
  if (name == "uniform") return SparsityProfile::Kind::kUniform;
  if (name == "owl") return SparsityProfile::Kind::kOwl;
  if (name == "explicit") return SparsityProfile::Kind::kExplicit;
  PIPEPRUNE_FAIL(ConfigError, "--sparsity-profile '" << name
                                                      << "' is not recognised; use uniform, owl, or explicit (with "
                                                         "--layer-sparsity)");
}

const char* sparsity_profile_name(SparsityProfile::Kind kind) {
  switch (kind) {
    case SparsityProfile::Kind::kUniform: return "uniform";
    case SparsityProfile::Kind::kOwl: return "owl";
    case SparsityProfile::Kind::kExplicit: return "explicit";
  }
  return "unknown";
}

void SparsityProfile::validate(const SparsityPattern& pattern, bool calibrated) const {
  PIPEPRUNE_CHECK(std::isfinite(owl_lambda) && owl_lambda >= 0, ConfigError,
                  "--owl-lambda " << owl_lambda << " must be a finite number >= 0 (OWL's default is 0.08)");
  PIPEPRUNE_CHECK(std::isfinite(owl_m) && owl_m > 0, ConfigError,
                  "--owl-m " << owl_m << " must be a finite number > 0 (OWL's default is 5)");
  PIPEPRUNE_CHECK(kind != Kind::kOwl || calibrated, ConfigError,
                  "--sparsity-profile owl measures outliers with the Wanda statistic over calibration samples; use "
                  "--method wanda or sparsegpt with it");
  PIPEPRUNE_CHECK(kind == Kind::kExplicit || layer_sparsity.empty(), ConfigError,
                  "--layer-sparsity gives every layer's ratio itself: use it with --sparsity-profile explicit (or "
                  "leave --sparsity-profile out)");
  if (kind != Kind::kExplicit) return;
  PIPEPRUNE_CHECK(!layer_sparsity.empty(), ConfigError,
                  "--sparsity-profile explicit needs --layer-sparsity: one ratio per decoder layer, comma-separated "
                  "or in a file");
  PIPEPRUNE_CHECK(!pattern.is_nm(), ConfigError,
                  "--layer-sparsity sets unstructured ratios; --pattern " << pattern.to_string()
                                                                          << " fixes N of every M instead (drop one)");
  for (size_t l = 0; l < layer_sparsity.size(); ++l) {
    PIPEPRUNE_CHECK(std::isfinite(layer_sparsity[l]) && layer_sparsity[l] >= 0 && layer_sparsity[l] < 1, ConfigError,
                    "--layer-sparsity: layer " << l << "'s ratio " << layer_sparsity[l]
                                               << " is not a fraction in [0, 1)");
  }
}

void SparsityProfile::validate(const SparsityPattern& pattern, bool calibrated, int64_t n_layers) const {
  validate(pattern, calibrated);
  PIPEPRUNE_CHECK(kind != Kind::kExplicit || static_cast<int64_t>(layer_sparsity.size()) == n_layers, ConfigError,
                  "--layer-sparsity gives " << layer_sparsity.size() << " ratios; the model has " << n_layers
                                            << " decoder layers (give one per layer)");
}

std::vector<double> owl_layer_sparsity(const std::vector<double>& outlier_percent, double sparsity, double lambda) {
  PIPEPRUNE_CHECK(!outlier_percent.empty(), Error, "OWL: no layer outlier densities");
  const auto [min_it, max_it] = std::minmax_element(outlier_percent.begin(), outlier_percent.end());
  const double lo = *min_it;
  const double hi = *max_it;
  PIPEPRUNE_CHECK(hi > lo, ConfigError,
                  "OWL: every layer has the same outlier density (" << lo
                                                                    << "%), so its ratios are undefined; change "
                                                                       "--owl-m or use --sparsity-profile uniform");
  // The original's expression in its order of operations (numpy float64, P:962-966).
  const double scale = 1.0 / (hi - lo) * lambda * 2;
  std::vector<double> density(outlier_percent.size());
  double mean = 0;
  for (size_t l = 0; l < density.size(); ++l) {
    density[l] = (outlier_percent[l] - lo) * scale;
    mean += density[l];
  }
  mean /= static_cast<double>(density.size());
  std::vector<double> ratios(density.size());
  for (size_t l = 0; l < density.size(); ++l) {
    const double s = 1 - (density[l] - mean + (1 - sparsity));
    ratios[l] = s <= 0 ? 0.01 : s;
    PIPEPRUNE_CHECK(ratios[l] < 1, ConfigError,
                    "OWL: layer " << l << "'s sparsity comes to " << ratios[l] << " (>= 1: every weight pruned); lower "
                                  << "--owl-lambda or --sparsity");
  }
  return ratios;
}

std::vector<double> applied_layer_sparsity(const SparsityPattern& pattern, const std::vector<double>& ratios,
                                           int64_t n_layers) {
  if (pattern.is_nm() || ratios.empty()) return std::vector<double>(static_cast<size_t>(n_layers), pattern.sparsity);
  PIPEPRUNE_CHECK(static_cast<int64_t>(ratios.size()) == n_layers, Error,
                  "per-layer sparsity: " << ratios.size() << " ratios for " << n_layers << " layers");
  return ratios;
}

}  // namespace pipeprune
