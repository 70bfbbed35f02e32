#include "core/prune/layer_pruner.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>

#include "core/common/error.h"
#include "core/prune/outlier_density.h"
#include "core/prune/zero_masked.h"

namespace pipeprune {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::vector<std::vector<LinearKind>> linear_groups(const ModelConfig& config, const LayerPruneOptions& options) {
  if (options.true_sequential && config.fused_projections) {
    return {{LinearKind::kQ}, {LinearKind::kO}, {LinearKind::kGate}, {LinearKind::kDown}};
  }
  if (options.true_sequential) {
    return {{LinearKind::kQ, LinearKind::kK, LinearKind::kV},
            {LinearKind::kO},
            {LinearKind::kGate, LinearKind::kUp},
            {LinearKind::kDown}};
  }
  return {layer_linears(config)};
}

bool in_group(const std::vector<LinearKind>& group, LinearKind kind) {
  return std::find(group.begin(), group.end(), kind) != group.end();
}

}  // namespace

LayerPruner::LayerPruner(DecoderLayerWeights& stored, const ModelConfig& config,
                                     const RopeTables& rope, const LayerPruneOptions& options)
    : stored_(stored), config_(config), rope_(rope), options_(options), groups_(linear_groups(config, options)) {
  c10::InferenceMode inference_guard;
  result_.layer = stored.layer;
  if (!options.layer_sparsity.empty() && !options.prune.pattern.is_nm()) {
    PIPEPRUNE_CHECK(stored.layer >= 0 && stored.layer < static_cast<int64_t>(options.layer_sparsity.size()), Error,
                    "layer " << stored.layer << ": no per-layer sparsity (" << options.layer_sparsity.size()
                             << " given)");
    options_.prune.pattern.sparsity = options.layer_sparsity[static_cast<size_t>(stored.layer)];
  }
  options_.prune.validate(config);
  compute_ = to_compute(stored, options.device, options.compute_dtype);
  tap_ = [this](LinearKind kind, const at::Tensor& input) {
    auto& pruner = pruners_[static_cast<int>(kind)];
    if (pruner) pruner->add_batch(input);
  };
  make_pruners();
}

LayerPruner::~LayerPruner() = default;

bool LayerPruner::done() const { return group_ >= groups_.size(); }

void LayerPruner::make_pruners() {
  if (done()) return;
  int64_t group_statistics = 0;
  const auto& group = groups_[group_];
  for (LinearKind kind : group) {
    // A linear reading another's input gets what that one's prune made of their statistics
    // (prune_in_group): q, k and v accumulate and factorise one Hessian instead of three.
    if (input_owner(kind) != kind && in_group(group, input_owner(kind))) continue;
    const auto shape = linear_shape(config_, kind);
    auto pruner = make_linear_pruner(options_.prune, shape[0], shape[1], options_.device, options_.statistics);
    group_statistics += pruner->bytes_statistics();
    pruners_[static_cast<int>(kind)] = std::move(pruner);
  }
  result_.bytes_statistics = std::max(result_.bytes_statistics, group_statistics);
}

at::Tensor LayerPruner::forward_and_collect(const at::Tensor& input) {
  c10::InferenceMode inference_guard;
  return decoder_layer_forward(compute_, config_, rope_, input, 0, nullptr, &tap_);
}

void LayerPruner::collect(const at::Tensor& input) {
  c10::InferenceMode inference_guard;
  // LinearKind runs in forward order, so the group's largest kind is the last input it needs.
  const auto& group = current_group();
  decoder_layer_linear_inputs(compute_, config_, rope_, input, tap_, *std::max_element(group.begin(), group.end()));
}

at::Tensor LayerPruner::forward(const at::Tensor& input) const {
  c10::InferenceMode inference_guard;
  return decoder_layer_forward(compute_, config_, rope_, input, 0, nullptr, nullptr);
}

double LayerPruner::outlier_percent(double m) const {
  c10::InferenceMode inference_guard;
  PIPEPRUNE_CHECK(options_.prune.method == PruneMethod::kWanda && groups_.size() == 1 && group_ == 0, Error,
                  "layer " << stored_.layer << ": outlier densities need the Wanda statistics of every linear");
  std::vector<OutlierInput> linears;
  for (LinearKind kind : groups_[0]) {
    const auto& holder = pruners_[static_cast<int>(input_owner(kind))];
    PIPEPRUNE_CHECK(holder != nullptr && holder->statistic().defined(), Error,
                    "layer " << stored_.layer << ": no statistics for " << linear_short_name(config_, kind));
    linears.push_back({compute_[kind].weight, holder->statistic()});
  }
  return layer_outlier_percent(linears, m);
}

void LayerPruner::prune_current_group() {
  prune_in_group(current_group());
  finish_group([this](LinearKind kind) -> at::Tensor {
    PIPEPRUNE_FAIL(Error, "layer " << stored_.layer << ": " << linear_short_name(config_, kind) << " was not pruned");
  });
}

void LayerPruner::prune_in_group(const std::vector<LinearKind>& mine) {
  c10::InferenceMode inference_guard;
  const auto group_start = Clock::now();
  const auto& group = current_group();
  for (size_t i = 0; i < group.size(); ++i) {
    const LinearKind kind = group[i];
    if (!in_group(mine, kind)) continue;
    const auto start = Clock::now();
    auto& pruner = pruners_[static_cast<int>(kind)];
    PIPEPRUNE_CHECK(pruner != nullptr, Error,
                    "layer " << stored_.layer << ": " << linear_short_name(config_, kind)
                             << " is pruned here but its input's statistics are elsewhere");
    at::Tensor weight = compute_[kind].weight.to(at::kFloat, /*non_blocking=*/false, /*copy=*/true);
    pruner->prune(weight);
    // Hand what the prune made of the shared statistics (SparseGPT's H^-1 factor) on to the
    // next linear reading the same input: one factorisation per input, and no copy.
    for (size_t j = i + 1; j < group.size(); ++j) {
      if (input_owner(group[j]) == input_owner(kind) && !pruners_[static_cast<int>(group[j])]) {
        pruners_[static_cast<int>(group[j])] = pruner->clone_for(linear_shape(config_, group[j])[0]);
        break;
      }
    }
    pruner.reset();
    store_pruned(kind, weight.to(at::kCPU).to(stored_[kind].weight.scalar_type()).contiguous(), weight);
    result_.linears[static_cast<int>(kind)].seconds_mask = seconds_since(start);
    pruned_here_[static_cast<int>(kind)] = true;
  }
  group_seconds_ += seconds_since(group_start);
}

void LayerPruner::finish_group(const std::function<at::Tensor(LinearKind)>& pruned_elsewhere) {
  c10::InferenceMode inference_guard;
  const auto start = Clock::now();
  for (LinearKind kind : current_group()) {
    if (pruned_here_[static_cast<int>(kind)]) continue;
    pruners_[static_cast<int>(kind)].reset();
    store_pruned(kind, pruned_elsewhere(kind));
  }
  result_.seconds_prune += group_seconds_ + seconds_since(start);
  group_seconds_ = 0;
  pruned_here_.fill(false);
  ++group_;
  make_pruners();
}

void LayerPruner::store_pruned(LinearKind kind, at::Tensor weight, at::Tensor compute_buffer) {
  Linear& stored_linear = stored_[kind];
  stored_linear.weight = std::move(weight);
  // The compute copy is the stored weight upcast again, as a model held in the stored dtype
  // computes. Copying it back into the fp32 buffer it was rounded from gives the same values
  // as a fresh .to() without mapping new pages (each a page fault here).
  const bool reuse = compute_buffer.defined() && compute_buffer.is_cpu() && options_.device.is_cpu() &&
                     options_.compute_dtype == at::kFloat && compute_buffer.scalar_type() == at::kFloat &&
                     compute_buffer.is_contiguous() && compute_buffer.sizes() == stored_linear.weight.sizes();
  if (reuse) {
    if (!compute_buffer.is_same(stored_linear.weight)) compute_buffer.copy_(stored_linear.weight);
    compute_[kind].weight = std::move(compute_buffer);
  } else {
    compute_[kind].weight = stored_linear.weight.to(options_.device, options_.compute_dtype);
  }
  LinearPruneResult& linear = result_.linears[static_cast<int>(kind)];
  linear.numel = stored_linear.weight.numel();
  linear.zeros = count_zeros(stored_linear.weight);
}

const std::vector<LinearKind>& LayerPruner::current_group() const {
  PIPEPRUNE_CHECK(!done(), Error, "layer " << stored_.layer << " is already pruned");
  return groups_[group_];
}

std::vector<LinearKind> LayerPruner::statistic_linears() const {
  std::vector<LinearKind> kinds;
  for (LinearKind kind : current_group()) {
    const auto& pruner = pruners_[static_cast<int>(kind)];
    if (pruner && pruner->needs_calibration()) kinds.push_back(kind);
  }
  return kinds;
}

LinearPruner& LayerPruner::statistic_holder(LinearKind kind) {
  auto& pruner = pruners_[static_cast<int>(kind)];
  PIPEPRUNE_CHECK(pruner != nullptr, Error,
                  "layer " << stored_.layer << ": " << linear_short_name(config_, kind) << " holds no statistics now");
  return *pruner;
}

at::Tensor LayerPruner::take_block_sum(LinearKind kind) { return statistic_holder(kind).take_block_sum(); }

void LayerPruner::set_statistic_from_sum(LinearKind kind, at::Tensor sum, int64_t n_samples) {
  statistic_holder(kind).set_statistic_from_sum(std::move(sum), n_samples);
}


}  // namespace pipeprune
