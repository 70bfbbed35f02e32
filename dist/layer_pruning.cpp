#include "dist/layer_pruning.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>

#include "core/common/error.h"
#include "core/common/progress.h"
#include "dist/device_fallback.h"

namespace pipeprune {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::vector<std::vector<LinearKind>> linear_groups(const LayerPruneOptions& options) {
  if (options.true_sequential && options.calibration == CalibrationMode::kSequential) {
    return {{LinearKind::kQ, LinearKind::kK, LinearKind::kV},
            {LinearKind::kO},
            {LinearKind::kGate, LinearKind::kUp},
            {LinearKind::kDown}};
  }
  return {std::vector<LinearKind>(kAllLinears.begin(), kAllLinears.end())};
}

bool in_group(const std::vector<LinearKind>& group, LinearKind kind) {
  return std::find(group.begin(), group.end(), kind) != group.end();
}

}  // namespace

bool needs_activations(const PruneOptions& options) { return options.method != PruneMethod::kMagnitude; }

LayerPruneSession::LayerPruneSession(DecoderLayerWeights& stored, const ModelConfig& config,
                                     const RopeTables& rope, const LayerPruneOptions& options)
    : stored_(stored), config_(config), rope_(rope), options_(options), groups_(linear_groups(options)) {
  c10::InferenceMode inference_guard;
  result_.layer = stored.layer;
  for (LinearKind kind : kAllLinears) {
    const auto shape = linear_shape(config, kind);
    options.prune.pattern.check_columns(shape[1], layer_tensor_name(stored.layer, linear_name(kind)) + ".weight");
  }
  compute_ = to_compute(stored, options.device, options.compute_dtype);
  tap_ = [this](LinearKind kind, const at::Tensor& input) {
    auto& pruner = pruners_[static_cast<int>(kind)];
    if (pruner) pruner->add_batch(input);
  };
  make_pruners();
}

LayerPruneSession::~LayerPruneSession() = default;

bool LayerPruneSession::done() const { return group_ >= groups_.size(); }

void LayerPruneSession::make_pruners() {
  if (done()) return;
  int64_t group_statistics = 0;
  const auto& group = groups_[group_];
  for (LinearKind kind : group) {
    // A linear reading another's input gets a copy of that one's statistics when it is pruned
    // (prune_current_group): q, k and v accumulate one Hessian instead of three.
    if (input_owner(kind) != kind && in_group(group, input_owner(kind))) continue;
    const auto shape = linear_shape(config_, kind);
    auto pruner = make_linear_pruner(options_.prune, shape[0], shape[1], options_.device);
    group_statistics += pruner->bytes_statistics();
    pruners_[static_cast<int>(kind)] = std::move(pruner);
  }
  result_.bytes_statistics = std::max(result_.bytes_statistics, group_statistics);
}

at::Tensor LayerPruneSession::forward_and_collect(const at::Tensor& input) {
  c10::InferenceMode inference_guard;
  return decoder_layer_forward(compute_, config_, rope_, input, 0, nullptr, &tap_);
}

at::Tensor LayerPruneSession::forward(const at::Tensor& input) const {
  c10::InferenceMode inference_guard;
  return decoder_layer_forward(compute_, config_, rope_, input, 0, nullptr, nullptr);
}

void LayerPruneSession::prune_current_group() {
  c10::InferenceMode inference_guard;
  PIPEPRUNE_CHECK(!done(), Error, "layer " << stored_.layer << " is already pruned");
  const auto group_start = Clock::now();
  const auto& group = groups_[group_];
  for (size_t i = 0; i < group.size(); ++i) {
    const LinearKind kind = group[i];
    const auto start = Clock::now();
    auto& pruner = pruners_[static_cast<int>(kind)];
    // Hand the shared statistics on to the next linear reading the same input before this
    // prune consumes them (SparseGPT modifies its Hessian): one extra copy at a time.
    for (size_t j = i + 1; j < group.size(); ++j) {
      if (input_owner(group[j]) == input_owner(kind) && !pruners_[static_cast<int>(group[j])]) {
        pruners_[static_cast<int>(group[j])] = pruner->clone_for(linear_shape(config_, group[j])[0]);
        break;
      }
    }
    Linear& stored_linear = stored_[kind];
    at::Tensor weight = compute_[kind].weight.to(at::kFloat, /*non_blocking=*/false, /*copy=*/true);
    pruner->prune(weight);
    pruner.reset();
    stored_linear.weight = weight.to(at::kCPU).to(stored_linear.weight.scalar_type()).contiguous();
    compute_[kind].weight = stored_linear.weight.to(options_.device, options_.compute_dtype);
    LinearPruneResult& linear = result_.linears[static_cast<int>(kind)];
    linear.numel = stored_linear.weight.numel();
    linear.zeros = stored_linear.weight.eq(0).sum().item<int64_t>();
    linear.seconds_mask = seconds_since(start);
  }
  result_.seconds_prune += seconds_since(group_start);
  ++group_;
  make_pruners();
}

LayerPruneResult prune_layer_sequential(DecoderLayerWeights& stored, const ModelConfig& config,
                                        const RopeTables& rope, const ActivationStore* inputs,
                                        ActivationStore* outputs, const LayerPruneOptions& options,
                                        const char** operation) {
  // Names the pass running and gives the test hook its chance to fail it.
  auto begin = [&](const char* name) {
    if (operation) *operation = name;
    maybe_inject_oom(stored.layer, name);
  };
  const bool calibrated = needs_activations(options.prune);
  PIPEPRUNE_CHECK(!calibrated || inputs != nullptr, Error,
                  "layer " << stored.layer << ": " << prune_method_name(options.prune.method)
                           << " needs calibration activations");
  LayerPruneSession session(stored, config, rope, options);
  // Sample-level progress of each pass, printed only when a pass runs long (every 10 s).
  const std::string where = fmt::format("layer {}/{}", stored.layer + 1, config.n_layers);
  while (!session.done()) {
    if (calibrated) {
      begin("stats");
      const auto start = Clock::now();
      Progress progress(where + " stats pass, sample", inputs->size(), 10.0, /*every_rank=*/true);
      for (int64_t s = 0; s < inputs->size(); ++s) {
        session.forward_and_collect(inputs->get(s).to(options.device));
        if (s + 1 < inputs->size()) progress.update(s + 1);
      }
      session.add_stats_seconds(seconds_since(start));
    }
    begin("mask");
    session.prune_current_group();
  }
  if (calibrated && outputs != nullptr) {
    begin("output");
    const auto start = Clock::now();
    Progress progress(where + " output pass, sample", inputs->size(), 10.0, /*every_rank=*/true);
    for (int64_t s = 0; s < inputs->size(); ++s) {
      outputs->put(s, session.forward(inputs->get(s).to(options.device)));
      if (s + 1 < inputs->size()) progress.update(s + 1);
    }
    session.add_output_seconds(seconds_since(start));
  }
  return session.result();
}

}  // namespace pipeprune
