// Wanda masks as locuslab/wanda prune_wanda computes them (score |W| * sqrt(scaler_row)).
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cstdint>

#include "core/common/error.h"
#include "core/common/log.h"
#include "core/prune/pruner.h"
#include "core/prune/selection.h"

namespace pipeprune {
namespace {

// return_given_alpha of the reference for one alpha, without its full-matrix passes: rows of
// non-negative scores are sorted, so their cumsums are non-decreasing, and "how many entries
// are <= t" is a binary search. Same thresholds, counts and fp32 sparsity as the reference.
struct AlphaStep {
  at::Tensor thres;     // [rows, 1] the row's threshold score
  at::Tensor count;     // [rows, 1] how many sorted prefixes fit under alpha * row sum
  at::Tensor sparsity;  // 0-dim float: pruned / numel, as the reference divides
};

AlphaStep step_for_alpha(double alpha, const at::Tensor& sorted, const at::Tensor& cumsum,
                         const at::Tensor& row_sum) {
  const at::Tensor thres_cumsum = at::mul(row_sum, alpha).reshape({-1, 1});
  at::Tensor count = at::searchsorted(cumsum, thres_cumsum, /*out_int32=*/false, /*right=*/true);
  // A NaN score makes its row sum NaN: no prefix compares <= it.
  count.masked_fill_(at::isnan(thres_cumsum), 0);
  // The reference gathers at count-1 and fails on a row where no prefix fits under alpha;
  // such a row prunes nothing here.
  const at::Tensor thres = at::gather(sorted, 1, at::sub(count, 1).clamp_min(0));
  at::Tensor pruned = at::searchsorted(sorted, thres, /*out_int32=*/false, /*right=*/true);
  pruned.masked_fill_(at::eq(count, 0), 0);
  at::Tensor sparsity = at::div(pruned.sum(), sorted.numel());
  return {thres, count, sparsity};
}

at::Tensor variant_mask(const at::Tensor& metric, double target) {
  // An explicit optional: a plain `true` would pick the (dim, descending) overload.
  const at::Tensor sorted =
      std::get<0>(at::sort(metric, c10::optional<bool>(true), /*dim=*/1, /*descending=*/false));
  const at::Tensor cumsum = at::cumsum(sorted, 1);
  const at::Tensor row_sum = at::sum(metric, {1});
  double alpha = 0.4;
  double low = 0.0;
  double high = 0.8;
  AlphaStep current = step_for_alpha(alpha, sorted, cumsum, row_sum);
  // The reference compares in float tensors (cur_sparsity is fp32) but moves alpha in doubles.
  while (at::gt(at::abs(at::sub(current.sparsity, target)), 0.001).item<bool>() &&
         high - low >= 0.001) {
    double next = 0.0;
    if (at::gt(current.sparsity, target).item<bool>()) {
      next = (alpha + low) / 2.0;
      high = alpha;
    } else {
      next = (alpha + high) / 2.0;
      low = alpha;
    }
    alpha = next;
    current = step_for_alpha(alpha, sorted, cumsum, row_sum);
  }
  log::debug("wanda variant: alpha {} sparsity {:.6f}", alpha, current.sparsity.item<float>());
  return at::le(metric, current.thres).logical_and_(at::gt(current.count, 0));
}

}  // namespace

at::Tensor wanda_mask(const at::Tensor& weight, const at::Tensor& scaler_row,
                      const SparsityPattern& pattern, bool use_variant) {
  PIPEPRUNE_CHECK(weight.dim() == 2 && weight.numel() > 0 && weight.is_floating_point(), Error,
                  "wanda_mask: weight must be a non-empty 2-D float tensor, got "
                      << weight.sizes());
  PIPEPRUNE_CHECK(scaler_row.dim() == 1 && scaler_row.size(0) == weight.size(1), Error,
                  "wanda_mask: scaler_row " << scaler_row.sizes() << " does not match weight "
                                            << weight.sizes());
  c10::InferenceMode guard;
  const at::Tensor column_scale = at::sqrt(scaler_row.to(weight.device(), at::kFloat));
  if (!pattern.is_nm() && !use_variant && weight.scalar_type() == at::kFloat) {
    // The common case, without a score matrix: scores made and ranked row by row.
    const auto k = static_cast<int64_t>(static_cast<double>(weight.size(1)) * pattern.sparsity);
    return stable_lowest_scaled_per_row(weight, column_scale, k);
  }
  if (pattern.is_nm()) {
    // The reference ignores --use_variant for N:M.
    pattern.check_columns(weight.size(1), "weight");
    if (weight.scalar_type() == at::kFloat) return topk_lowest_scaled_per_group(weight, column_scale, pattern.n, pattern.m);
    return topk_lowest_per_group(at::mul(at::abs(weight), column_scale.reshape({1, -1})), pattern.n, pattern.m);
  }
  const at::Tensor metric = at::mul(at::abs(weight), column_scale.reshape({1, -1}));
  if (use_variant) return variant_mask(metric, pattern.sparsity);
  const auto k = static_cast<int64_t>(static_cast<double>(metric.size(1)) * pattern.sparsity);
  return stable_lowest_per_row(metric, k);
}

}  // namespace pipeprune
