#include "core/prune/calibration_stats.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <functional>

#include "core/common/error.h"

namespace pipeprune {
namespace {

// Calls fn with each sequence as the reference sees it after reshape((-1, cols)).t():
// [cols, tokens], a transposed view of a contiguous [tokens, cols] block.
void for_each_sequence(const at::Tensor& stats, int64_t cols, const at::Tensor& input,
                       const std::function<void(const at::Tensor&)>& fn) {
  PIPEPRUNE_CHECK((input.dim() == 2 || input.dim() == 3) && input.size(-1) == cols &&
                      input.is_floating_point(),
                  Error,
                  "add_batch: expected a float input [batch, tokens, " << cols << "] or [tokens, "
                                                                       << cols << "], got "
                                                                       << input.sizes());
  const at::Tensor batched = (input.dim() == 2 ? input.unsqueeze(0) : input).to(stats.device());
  for (int64_t b = 0; b < batched.size(0); ++b) {
    fn(batched.select(0, b).contiguous().reshape({-1, cols}).t());
  }
}

}  // namespace

void add_wanda_batch(at::Tensor& scaler_row, int64_t* n_samples, const at::Tensor& input) {
  c10::InferenceMode guard;
  const int64_t cols = scaler_row.size(0);
  for_each_sequence(scaler_row, cols, input, [&](const at::Tensor& x_t) {
    scaler_row.mul_(static_cast<double>(*n_samples) / static_cast<double>(*n_samples + 1));
    *n_samples += 1;
    const at::Tensor x = x_t.to(at::kFloat);
    scaler_row.add_(at::norm(x, 2, {1}).pow(2).div(*n_samples));
  });
}

void add_hessian_batch(at::Tensor& hessian, int64_t* n_samples, const at::Tensor& input) {
  c10::InferenceMode guard;
  const int64_t cols = hessian.size(0);
  for_each_sequence(hessian, cols, input, [&](const at::Tensor& x_t) {
    hessian.mul_(static_cast<double>(*n_samples) / static_cast<double>(*n_samples + 1));
    *n_samples += 1;
    const at::Tensor x = x_t.to(at::kFloat).mul(std::sqrt(2.0 / static_cast<double>(*n_samples)));
    hessian.add_(x.matmul(x.t()));
  });
}

void add_wanda_sum(at::Tensor& sum, const at::Tensor& input) {
  c10::InferenceMode guard;
  for_each_sequence(sum, sum.size(0), input, [&](const at::Tensor& x_t) {
    sum.add_(at::norm(x_t.to(at::kFloat), 2, {1}).pow(2));
  });
}

void add_hessian_sum(at::Tensor& sum, const at::Tensor& input) {
  c10::InferenceMode guard;
  for_each_sequence(sum, sum.size(0), input, [&](const at::Tensor& x_t) {
    const at::Tensor x = x_t.to(at::kFloat);
    sum.addmm_(x, x.t());
  });
}

void wanda_mean_of_sum(at::Tensor& sum, int64_t n_samples) {
  PIPEPRUNE_CHECK(n_samples > 0, Error, "wanda statistic of no samples");
  sum.div_(static_cast<double>(n_samples));
}

void hessian_mean_of_sum(at::Tensor& sum, int64_t n_samples) {
  PIPEPRUNE_CHECK(n_samples > 0, Error, "sparsegpt Hessian of no samples");
  sum.mul_(2.0 / static_cast<double>(n_samples));
}

}  // namespace pipeprune
