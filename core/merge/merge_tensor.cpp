#include "core/merge/merge_tensor.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "core/common/error.h"
#include "core/merge/sparsify.h"

namespace pipeprune {
namespace {

// mergekit builds its weights as a tensor of the (fp32) input dtype: every weight, and lambda as
// a Python scalar in an fp32 op, acts rounded to fp32. ATen casts a double Scalar to the
// tensor's float type anyway; rounding here makes that visible and the same on every path.
double as_fp32(double value) { return static_cast<double>(static_cast<float>(value)); }

// x / d elementwise by true division on every device. Not x / Scalar: CUDA computes that as
// x * (1 / d), which can differ by an ulp; a 0-dim tensor on x's device is divided truly (as
// mergekit's divisors, which are tensors, are).
void divide_(at::Tensor& x, float d) { x.div_(at::scalar_tensor(static_cast<double>(d), x.options())); }

void check_inputs(const at::Tensor& reference, const std::vector<at::Tensor>& models,
                  const std::vector<ModelParams>& params, const std::string& tensor_name) {
  PIPEPRUNE_CHECK(models.size() == params.size(), Error,
                  "merge_tensor " << tensor_name << ": " << models.size() << " models but " << params.size()
                                  << " parameter sets");
  for (size_t i = 0; i < models.size(); ++i) {
    PIPEPRUNE_CHECK(models[i].defined() && models[i].is_floating_point(), Error,
                    "merge_tensor " << tensor_name << ": model " << i << "'s tensor is not a float tensor");
    PIPEPRUNE_CHECK(models[i].sizes() == reference.sizes(), Error,
                    "merge_tensor " << tensor_name << ": model " << i << " has shape " << models[i].sizes()
                                    << ", expected " << reference.sizes());
  }
}

// The number of true entries of a bool mask. On the host a byte loop: ATen's sum of a bool
// tensor first copies it to int64 (8 bytes per element), five times the cost of the loop.
int64_t count_true(const at::Tensor& mask) {
  if (!mask.is_cpu()) return mask.sum().item<int64_t>();
  const at::Tensor m = mask.contiguous();
  const uint8_t* data = reinterpret_cast<const uint8_t*>(m.data_ptr<bool>());
  int64_t count = 0;
  for (int64_t i = 0, n = m.numel(); i < n; ++i) count += data[i];
  return count;
}

// LinearMergeTask: (weights * stack(x)).sum(0) with each product rounded before the sum, so no
// add with alpha (ATen fuses that into an FMA).
at::Tensor merge_linear(const std::vector<at::Tensor>& models, const std::vector<ModelParams>& params,
                        const MergeSettings& settings, const std::string& tensor_name) {
  PIPEPRUNE_CHECK(!models.empty(), Error, "merge_tensor " << tensor_name << ": linear needs at least one model");
  check_inputs(models[0], models, params, tensor_name);
  const at::Device device = models[0].device();
  at::Tensor res = at::mul(models[0].to(device, at::kFloat), as_fp32(params[0].weight));
  float weight_sum = static_cast<float>(params[0].weight);
  for (size_t i = 1; i < models.size(); ++i) {
    res.add_(at::mul(models[i].to(device, at::kFloat), as_fp32(params[i].weight)));
    weight_sum += static_cast<float>(params[i].weight);
  }
  // No zero guard, as in mergekit: validate_merge refuses weights summing to 0 up front.
  if (settings.normalize) divide_(res, weight_sum);
  return res;
}

// The task vector of model i, sparsified and rescaled as the method says, then weighted. Fills
// the model's entries of the stats.
at::Tensor weighted_delta(const at::Tensor& b, const at::Tensor& model, size_t i, const ModelParams& p,
                          const MergeSettings& settings, const std::string& tensor_name, double* kept_fraction,
                          double* rescale_factor) {
  at::Tensor delta = at::sub(model.to(b.device(), at::kFloat), b);
  if (uses_density(settings.method) && p.density < 1.0) {
    // DARE's mask is made on the host (its stream depends on the index alone) and counted
    // there, before the copy to the device.
    at::Tensor keep =
        settings.method == MergeMethod::kTies
            ? magnitude_keep_mask(delta, p.density)
            : dare_keep_mask(delta.sizes(), p.density, settings.seed, dare_stream(tensor_name, static_cast<int>(i)));
    if (kept_fraction != nullptr && delta.numel() > 0) {
      *kept_fraction = static_cast<double>(count_true(keep)) / static_cast<double>(delta.numel());
    }
    delta = rescaled_masked(delta, keep.to(b.device()), settings.rescale, p.density, rescale_factor);
  }
  return delta.mul_(as_fp32(p.weight));
}

// get_mask: whether each weighted delta's sign equals the elected one. sign(wd) == +1 is
// wd > 0 and == -1 is wd < 0, so zeros (and NaNs) never agree. With signed_count, adds the
// number of entries that have a sign (wd > 0 or wd < 0) for the stats.
std::vector<at::Tensor> agreement_masks(const std::vector<at::Tensor>& wd, Consensus consensus,
                                        int64_t* signed_count) {
  const auto vote = [&](size_t i) { return consensus == Consensus::kSum ? wd[i] : at::sign(wd[i]); };
  // ((v0 + v1) + v2) + ...: stack(...).sum(0)'s order; never written into wd.
  at::Tensor votes = wd.size() == 1 ? vote(0) : at::add(vote(0), vote(1));
  for (size_t i = 2; i < wd.size(); ++i) votes.add_(vote(i));
  const at::Tensor positive = at::ge(votes, 0);  // a zero vote elects +1
  votes.reset();
  std::vector<at::Tensor> agree;
  agree.reserve(wd.size());
  for (const at::Tensor& w : wd) {
    const at::Tensor plus = at::gt(w, 0);
    const at::Tensor minus = at::lt(w, 0);
    if (signed_count != nullptr) *signed_count += count_true(plus) + count_true(minus);
    agree.push_back(at::where(positive, plus, minus));
  }
  return agree;
}

// The consensus branch of GTATask.execute: mixed = sum wd_i * mask_i, normalized by the sum of
// the agreeing weights. Consumes wd.
at::Tensor mix_with_consensus(std::vector<at::Tensor> wd, const std::vector<ModelParams>& params,
                              const MergeSettings& settings, TensorMergeStats* stats) {
  int64_t nonzero = 0;
  const std::vector<at::Tensor> agree = agreement_masks(wd, settings.consensus, stats ? &nonzero : nullptr);
  const at::TensorOptions wd_options = wd[0].options();
  if (stats != nullptr) {
    int64_t agreeing = 0;
    for (const at::Tensor& a : agree) agreeing += count_true(a);
    stats->sign_agreement = nonzero == 0 ? 1.0 : static_cast<double>(agreeing) / static_cast<double>(nonzero);
  }
  // wd * mask, not where(mask, wd, 0): a disagreeing negative entry contributes -0, as mergekit's.
  at::Tensor mixed = wd[0].mul_(agree[0]);
  for (size_t i = 1; i < wd.size(); ++i) {
    mixed.add_(wd[i].mul_(agree[i]));
    wd[i].reset();
  }
  if (settings.normalize) {
    // w_i where agreeing, else 0 (+0 where mergekit's w_i * 0 may give -0: only a zero divisor
    // could tell, and it becomes 1).
    const auto agreeing_weight = [&](size_t i) {
      return at::where(agree[i], at::scalar_tensor(as_fp32(params[i].weight), wd_options),
                       at::scalar_tensor(0.0, wd_options));
    };
    at::Tensor div = agreeing_weight(0);
    for (size_t i = 1; i < agree.size(); ++i) div.add_(agreeing_weight(i));
    div.masked_fill_(at::eq(div, 0), 1.0);
    mixed.div_(div);
  }
  return mixed;
}

at::Tensor merge_task_vectors(const at::Tensor& base, const std::vector<at::Tensor>& models,
                              const std::vector<ModelParams>& params, const MergeSettings& settings,
                              const std::string& tensor_name, TensorMergeStats* stats) {
  PIPEPRUNE_CHECK(base.defined() && base.is_floating_point(), Error,
                  "merge_tensor " << tensor_name << ": " << merge_method_name(settings.method)
                                  << " needs the base model's float tensor");
  check_inputs(base, models, params, tensor_name);
  const at::Tensor b = base.to(at::kFloat);
  if (models.empty()) return b.clone();  // every task vector skipped: mergekit returns the base

  const bool consensus = settings.consensus != Consensus::kNone;
  const bool rescaled = uses_density(settings.method) && settings.rescale != Rescale::kNone;
  std::vector<double> kept(models.size(), 1.0);
  std::vector<double> factors(models.size(), 1.0);
  std::vector<at::Tensor> wd;  // kept for the election; without one, summed as they come
  at::Tensor mixed;
  for (size_t i = 0; i < models.size(); ++i) {
    at::Tensor w = weighted_delta(b, models[i], i, params[i], settings, tensor_name, stats ? &kept[i] : nullptr,
                                  &factors[i]);
    if (consensus) {
      wd.push_back(std::move(w));
    } else if (i == 0) {
      mixed = std::move(w);
    } else {
      mixed.add_(w);
    }
  }
  if (stats != nullptr) {
    double kept_sum = 0.0;
    for (double k : kept) kept_sum += k;
    stats->kept_fraction = kept_sum / static_cast<double>(kept.size());
    stats->rescale_factors = rescaled ? factors : std::vector<double>{};
  }

  if (consensus) {
    mixed = mix_with_consensus(std::move(wd), params, settings, stats);
  } else if (settings.normalize) {
    float div = static_cast<float>(params[0].weight);
    for (size_t i = 1; i < params.size(); ++i) div += static_cast<float>(params[i].weight);
    // divisor[divisor.abs() < 1e-8] = 1 compares in fp32 (the scalar takes the tensor's dtype).
    if (std::fabs(div) < static_cast<float>(1e-8)) div = 1.0f;
    divide_(mixed, div);
  }
  if (settings.lambda != 1.0) mixed.mul_(as_fp32(settings.lambda));
  return mixed.add_(b);  // b + mixed: IEEE addition commutes
}

}  // namespace

at::Tensor merge_tensor(const at::Tensor& base, const std::vector<at::Tensor>& models,
                        const std::vector<ModelParams>& params, const MergeSettings& settings,
                        const std::string& tensor_name, TensorMergeStats* stats) {
  if (stats != nullptr) *stats = TensorMergeStats{};
  if (settings.method == MergeMethod::kLinear) return merge_linear(models, params, settings, tensor_name);
  return merge_task_vectors(base, models, params, settings, tensor_name, stats);
}

}  // namespace pipeprune
