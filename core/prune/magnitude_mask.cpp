// Magnitude masks as locuslab/wanda prune_magnitude computes them.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "core/common/error.h"
#include "core/prune/pruner.h"
#include "core/prune/selection.h"

namespace pipeprune {

at::Tensor magnitude_mask(const at::Tensor& weight, const SparsityPattern& pattern) {
  PIPEPRUNE_CHECK(weight.dim() == 2 && weight.numel() > 0 && weight.is_floating_point(), Error,
                  "magnitude_mask: weight must be a non-empty 2-D float tensor, got "
                      << weight.sizes());
  c10::InferenceMode guard;
  if (pattern.is_nm()) {
    pattern.check_columns(weight.size(1), "weight");
    if (weight.scalar_type() == at::kFloat) {
      // |W| * 1 is |W| exactly: the fused selection without the |W| copy.
      const at::Tensor ones = at::ones({weight.size(1)}, weight.options());
      return topk_lowest_scaled_per_group(weight, ones, pattern.n, pattern.m);
    }
    return topk_lowest_per_group(at::abs(weight), pattern.n, pattern.m);
  }
  const at::Tensor metric = at::abs(weight);
  // One threshold for the whole matrix, pruned with `<=`: int(numel*s)+1 entries plus ties,
  // as the reference does (sparsity reports are compared against it).
  const auto index =
      static_cast<int64_t>(static_cast<double>(weight.numel()) * pattern.sparsity);
  const at::Tensor thresh = sorted_value_at(metric, index).to(metric.device());
  return at::le(metric, thresh);
}

}  // namespace pipeprune
