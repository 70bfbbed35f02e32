// Merging one tensor of several fine-tuned models: the arithmetic of mergekit's LinearMergeTask
// and GTATask.execute (generalized_task_arithmetic.py), with the rules of
// /work/shared/MERGE_SEMANTICS.md.
//
// Computed in fp32 on the base's device (linear: the first model's), whatever the inputs' float
// dtypes; the caller casts the fp32 result once to the output dtype, which equals mergekit run
// with `dtype: float32`. Stateless and thread-safe; any device (DARE masks and the magnitude
// selection are made on the host and moved to the device).
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <vector>

#include "core/merge/merge_method.h"

namespace pipeprune {

// What one tensor's merge did, for the job's report.
struct TensorMergeStats {
  // Mean over models of kept entries / numel (1 for methods without sparsification and for
  // models with density >= 1).
  double kept_fraction = 1.0;
  // With a consensus: agreeing nonzero (model, element) pairs / all nonzero pairs of the
  // weighted deltas (NaNs count as neither; 1 when every delta is zero). Unset without one.
  std::optional<double> sign_agreement;
  // One factor per model when the method sparsifies and a rescale is set (1 for models with
  // density >= 1, which are not sparsified, and for the L1 eps case); empty otherwise.
  std::vector<double> rescale_factors;
};

// Task-vector methods (all but linear), in GTATask.execute's order:
//   delta_i = x_i - b;  sparsify (ties: magnitude_keep_mask; dare_*: dare_keep_mask with
//   dare_stream(tensor_name, i) and settings.seed; density >= 1: untouched) and rescale;
//   wd_i = delta_i * float(w_i);
//   consensus sum: maj = +1 where sum_i wd_i >= 0 else -1; count: where sum_i sign(wd_i) >= 0;
//     mask_i = sign(wd_i) == maj (a zero never agrees); mixed = sum_i wd_i * mask_i;
//     div = sum_i w_i * mask_i, 0 -> 1;
//   no consensus: mixed = sum_i wd_i; div = sum_i w_i (a scalar), |div| < 1e-8 -> 1;
//   normalize: mixed / div;  lambda != 1: mixed * float(lambda);  out = b + mixed.
// linear: out = sum_i float(w_i) * x_i, normalize: out / sum_i w_i (base ignored).
// Every sum runs over models left to right in their order, in fp32.
// base: the base model's tensor (undefined allowed for linear); models: each of base's shape
// (embeddings already sliced by the caller); params: one per model. With no model a task-vector
// method returns the base. Returns a new fp32 tensor.
at::Tensor merge_tensor(const at::Tensor& base, const std::vector<at::Tensor>& models,
                        const std::vector<ModelParams>& params, const MergeSettings& settings,
                        const std::string& tensor_name, TensorMergeStats* stats = nullptr);

}  // namespace pipeprune
