#include "core/prune/outlier_density.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "core/common/error.h"
#include "core/common/shape_text.h"

namespace pipeprune {
namespace {

// The Wanda metric of one linear, fp32 on the weight's device (the original's
// torch.abs(W) * torch.sqrt(scaler_row.reshape((1, -1)))).
at::Tensor wanda_metric(const OutlierInput& linear) {
  PIPEPRUNE_CHECK(linear.weight.dim() == 2 && linear.scaler_row.dim() == 1 &&
                      linear.scaler_row.size(0) == linear.weight.size(1),
                  Error,
                  "OWL: a weight " << shape_text(linear.weight.sizes()) << " with a statistic "
                                   << shape_text(linear.scaler_row.sizes()));
  const at::Tensor scaler = linear.scaler_row.to(linear.weight.device(), at::kFloat);
  return linear.weight.to(at::kFloat).abs() * scaler.sqrt().reshape({1, -1});
}

}  // namespace

double layer_outlier_percent(const std::vector<OutlierInput>& linears, double m) {
  c10::InferenceMode guard;
  PIPEPRUNE_CHECK(!linears.empty(), Error, "OWL: a layer without linears");
  double sum = 0;
  int64_t numel = 0;
  for (const OutlierInput& linear : linears) {
    sum += wanda_metric(linear).sum(at::kDouble).item<double>();
    numel += linear.weight.numel();
  }
  // torch.mean(W) * threshold: an fp32 mean times the Python float, computed in fp32.
  const float threshold = static_cast<float>(sum / static_cast<double>(numel)) * static_cast<float>(m);
  int64_t count = 0;
  for (const OutlierInput& linear : linears) count += wanda_metric(linear).gt(threshold).sum().item<int64_t>();
  // float(count) / total_params * 100, in that order.
  return static_cast<double>(count) / static_cast<double>(numel) * 100;
}

}  // namespace pipeprune
