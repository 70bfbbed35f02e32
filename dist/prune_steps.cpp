#include "dist/prune_steps.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>

#include "core/common/error.h"
#include "core/common/log.h"
#include "core/model/decoder.h"
#include "core/prune/input_assignment.h"
#include "dist/layer_broadcast.h"

namespace pipeprune {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

}  // namespace

void output_pass(LayerPruner& pruner, const std::string& where, const ActivationStore& inputs, ActivationStore& outputs,
                 c10::Device device) {
  const auto start = Clock::now();
  Progress progress(where + " output pass, sample", inputs.size(), 10.0, /*every_rank=*/true);
  for (int64_t s = 0; s < inputs.size(); ++s) {
    outputs.put(s, pruner.forward(inputs.get(s).to(device)));
    if (s + 1 < inputs.size()) progress.update(s + 1);
  }
  pruner.add_output_seconds(seconds_since(start));
}

LayerPruneResult prune_layer_sequential(DecoderLayerWeights& stored, const ModelConfig& config,
                                        const RopeTables& rope, const ActivationStore* inputs,
                                        ActivationStore* outputs, const LayerPruneOptions& options,
                                        const std::function<void(LayerPass)>& begin_pass) {
  auto begin = [&](LayerPass pass) {
    if (begin_pass) begin_pass(pass);
  };
  const bool calibrated = needs_activations(options.prune.method);
  PIPEPRUNE_CHECK(!calibrated || inputs != nullptr, Error,
                  "layer " << stored.layer << ": " << prune_method_name(options.prune.method)
                           << " needs calibration activations");
  LayerPruner pruner(stored, config, rope, options);
  // Sample-level progress of each pass, printed only when a pass runs long (every 10 s).
  const std::string where = fmt::format("layer {}/{}", stored.layer + 1, config.n_layers);
  while (!pruner.done()) {
    if (calibrated) {
      begin(LayerPass::kStats);
      const auto start = Clock::now();
      Progress progress(where + " stats pass, sample", inputs->size(), 10.0, /*every_rank=*/true);
      for (int64_t s = 0; s < inputs->size(); ++s) {
        pruner.collect(inputs->get(s).to(options.device));
        if (s + 1 < inputs->size()) progress.update(s + 1);
      }
      pruner.add_stats_seconds(seconds_since(start));
    }
    begin(LayerPass::kMask);
    pruner.prune_current_group();
  }
  if (calibrated && outputs != nullptr) {
    begin(LayerPass::kOutput);
    output_pass(pruner, where, *inputs, *outputs, options.device);
  }
  return pruner.result();
}

LayerPruneResult forward_finished_layer(const DecoderLayerWeights& pruned, const ModelConfig& config,
                                        const RopeTables& rope, const ActivationStore* inputs,
                                        ActivationStore* outputs, c10::Device device, c10::ScalarType compute_dtype) {
  LayerPruneResult result;
  result.layer = pruned.layer;
  for (LinearKind kind : layer_linears(config)) {
    LinearPruneResult& linear = result.linears[static_cast<int>(kind)];
    linear.numel = pruned[kind].weight.numel();
    linear.zeros = pruned[kind].weight.eq(0).sum().item<int64_t>();
  }
  if (inputs != nullptr && outputs != nullptr) {
    const auto start = Clock::now();
    const DecoderLayerWeights compute = to_compute(pruned, device, compute_dtype);
    for (int64_t s = 0; s < inputs->size(); ++s) {
      outputs->put(s, decoder_layer_forward(compute, config, rope, inputs->get(s).to(device)));
    }
    result.seconds_output = seconds_since(start);
  }
  return result;
}

PrunedLayers::PrunedLayers(ModelWriter& writer, JobMemoryLog& memory_log, int64_t n_stage_layers,
                           int64_t n_model_layers)
    : writer_(writer),
      memory_log_(memory_log),
      n_model_layers_(n_model_layers),
      progress_("stage layer", n_stage_layers, 0.0, /*every_rank=*/true) {}

bool PrunedLayers::resume_layer(LayerRun& run, const ModelConfig& config, c10::ScalarType compute_dtype,
                                const ActivationStore* inputs, ActivationStore* outputs, DecoderLayerWeights& stored,
                                LayerPruneResult& result) {
  if (!done(run.layer())) return false;
  run.begin(LayerPass::kLoad);
  if (!staged_) staged_ = writer_.staged();
  stored = load_decoder_layer(*staged_, config, run.layer());
  run.begin(LayerPass::kOutput);
  result = forward_finished_layer(stored, config, run.rope(), inputs, outputs, run.device(), compute_dtype);
  return true;
}

void PrunedLayers::add(const DecoderLayerWeights& layer, const LayerPruneResult& result, bool resumed) {
  if (!resumed) writer_.write_layer(layer);
  results_.push_back(result);
  int64_t zeros = 0;
  int64_t numel = 0;
  for (const auto& linear : result.linears) {
    zeros += linear.zeros;
    numel += linear.numel;
  }
  progress_.update(static_cast<int64_t>(results_.size()),
                   fmt::format("model layer {}/{} sparsity {:.4f} (stats {:.2f}s, prune {:.2f}s, output {:.2f}s)",
                               result.layer + 1, n_model_layers_, numel ? static_cast<double>(zeros) / numel : 0.0,
                               result.seconds_stats, result.seconds_prune, result.seconds_output));
  memory_log_.checkpoint(fmt::format("layer {} done", result.layer));
}

SequentialPruneStep::SequentialPruneStep(const StageContext& context, const LayerPruneOptions& options,
                                         PrunedLayers& pruned)
    : context_(context), options_(options), pruned_(pruned) {}

void SequentialPruneStep::run(LayerRun& run, const ActivationStore* inputs, ActivationStore* outputs) {
  resumed_ = pruned_.resume_layer(run, context_.config, options_.compute_dtype, inputs, outputs, stored_, result_);
  if (resumed_) return;
  // Loaded on every attempt: a retry on the CPU starts again from the checkpoint's weights.
  run.begin(LayerPass::kLoad);
  stored_ = load_decoder_layer(context_.checkpoint, context_.config, run.layer());
  LayerPruneOptions options = options_;
  options.device = run.device();
  result_ = prune_layer_sequential(stored_, context_.config, run.rope(), inputs, outputs, options,
                                   [&run](LayerPass pass) { run.begin(pass); });
}

void SequentialPruneStep::commit(int64_t layer) {
  pruned_.add(stored_, result_, resumed_);
  stored_ = DecoderLayerWeights();
}

SampleParallelPruneStep::SampleParallelPruneStep(const StageContext& context, const LayerPruneOptions& options,
                                                 const SampleSplit& split, bool read_everywhere, PrunedLayers& pruned)
    : context_(context),
      options_(options),
      split_(split),
      read_everywhere_(read_everywhere),
      pruned_(pruned),
      progress_("model layer (all ranks)", context.config.n_layers, 0.0) {
  options_.statistics = StatisticMode::kBlockSums;
}

void reduce_block_statistics(Transport& transport, int rank, const SampleSplit& split, LayerPruner& pruner,
                             const ActivationStore& inputs, const std::vector<LinearKind>& kinds,
                             const std::vector<int>& roots, c10::Device device) {
  // The running totals, on the rank pruning each input, folded block by block.
  std::vector<at::Tensor> totals(kinds.size());
  for (int64_t round = 0; round < split.n_rounds(); ++round) {
    const auto [begin, end] = split.local_block(rank, round);
    for (int64_t i = begin; i < end; ++i) pruner.collect(inputs.get(i).to(device));
    for (size_t k = 0; k < kinds.size(); ++k) {
      at::Tensor block = begin < end ? pruner.take_block_sum(kinds[k]) : at::Tensor();
      if (rank == roots[k] && !totals[k].defined()) {
        totals[k] = at::zeros_like(block.defined() ? block : pruner.take_block_sum(kinds[k]));
      }
      const auto start = Clock::now();
      transport.reduce_sum_into(totals[k], block, ReduceOptions{roots[k], split.contributors(round)});
      pruner.add_reduce_seconds(seconds_since(start));
    }
  }
  for (size_t k = 0; k < kinds.size(); ++k) {
    if (rank == roots[k]) pruner.set_statistic_from_sum(kinds[k], std::move(totals[k]), split.n_samples());
  }
}

void SampleParallelPruneStep::run(LayerRun& run, const ActivationStore* inputs, ActivationStore* outputs) {
  Transport& transport = *context_.transport;
  const int owner = context_.plan.owner_of_layer(run.layer());
  // Every rank reads a finished layer back from the staged output (the ranks write there, so
  // they all see it) for its own samples' outputs.
  resumed_ = pruned_.resume_layer(run, context_.config, options_.compute_dtype, inputs, outputs, stored_, result_);
  if (resumed_) return;
  run.begin(LayerPass::kLoad);
  stored_ = layer_on_every_rank(context_, run.layer(), read_everywhere_);
  LayerPruneOptions options = options_;
  options.device = run.device();
  PIPEPRUNE_CHECK(inputs != nullptr, Error,
                  "layer " << run.layer() << ": " << prune_method_name(options.prune.method)
                           << " needs calibration activations");
  LayerPruner pruner(stored_, context_.config, run.rope(), options);
  const std::string where = fmt::format("layer {}/{}", run.layer() + 1, context_.config.n_layers);
  while (!pruner.done()) {
    // The group's distinct inputs and the rank pruning each one's linears.
    const std::vector<LinearKind> group = pruner.current_group();
    const std::vector<LinearKind> kinds = pruner.statistic_linears();
    const std::vector<int> roots =
        assign_inputs(context_.config, options.prune.method, kinds, context_.world_size(), owner);
    auto root_of = [&](LinearKind kind) {
      const auto it = std::find(kinds.begin(), kinds.end(), input_owner(kind));
      PIPEPRUNE_CHECK(it != kinds.end(), Error, where << ": no statistics for " << linear_short_name(context_.config, kind));
      return roots[static_cast<size_t>(it - kinds.begin())];
    };
    run.begin(LayerPass::kStats);
    const auto start = Clock::now();
    reduce_block_statistics(transport, context_.rank(), split_, pruner, *inputs, kinds, roots, run.device());
    pruner.add_stats_seconds(seconds_since(start));
    run.begin(LayerPass::kMask);
    std::vector<LinearKind> mine;
    for (LinearKind kind : group) {
      if (root_of(kind) == context_.rank()) mine.push_back(kind);
    }
    pruner.prune_in_group(mine);
    // Every pruned linear from the rank that pruned it, in layer order.
    std::array<at::Tensor, kNumLinears> pruned;
    for (LinearKind kind : group) {
      const int root = root_of(kind);
      pruned[static_cast<int>(kind)] =
          transport.broadcast(root == context_.rank() ? stored_[kind].weight : at::Tensor(), BroadcastOptions{root});
    }
    pruner.finish_group([&](LinearKind kind) { return pruned[static_cast<int>(kind)].to(at::kCPU); });
  }
  if (outputs != nullptr) {
    run.begin(LayerPass::kOutput);
    output_pass(pruner, where, *inputs, *outputs, run.device());
  }
  result_ = pruner.result();
}

void SampleParallelPruneStep::commit(int64_t layer) {
  if (context_.rank() == context_.plan.owner_of_layer(layer)) pruned_.add(stored_, result_, resumed_);
  stored_ = DecoderLayerWeights();
  // Every rank walks every layer: the first rank's line is the job's progress.
  if (context_.is_first()) progress_.update(layer + 1);
}

DensePruneSteps::DensePruneSteps(const StageContext& context, const LayerPruneOptions& options, int64_t n_positions,
                                 PrunedLayers& pruned)
    : context_(context), pruned_(pruned), rope_(make_rope_tables(context.config, n_positions, context.device)) {
  // Dense calibration has no true-sequential groups: every layer sees the dense model.
  LayerPruneOptions one_group = options;
  one_group.true_sequential = false;
  stored_.reserve(static_cast<size_t>(context.stage.n_layers()));
  for (int64_t layer = context.stage.first_layer; layer < context.stage.end_layer; ++layer) {
    stored_.push_back(load_decoder_layer(context.checkpoint, context.config, layer));
  }
  for (auto& layer : stored_) pruners_.push_back(std::make_unique<LayerPruner>(layer, context.config, rope_, one_group));
}

DensePruneSteps::~DensePruneSteps() = default;

size_t DensePruneSteps::index_of(int64_t layer) const { return static_cast<size_t>(layer - context_.stage.first_layer); }

void DensePruneSteps::collect(StageRunner& runner, const at::Tensor& windows) {
  Progress progress("dense stats pass, sample", windows.size(0), 2.0, /*every_rank=*/true);
  for (int64_t s = 0; s < windows.size(0); ++s) {
    // Statistics summed over the samples already seen cannot move to the CPU halfway.
    runner.run_sample(windows.slice(0, s, s + 1), kTagCalibration, LayerPass::kStats, RetryPolicy::kFail,
                      [&](LayerRun&, size_t index, const at::Tensor& hidden) {
                        const auto start = Clock::now();
                        at::Tensor output = pruners_[index]->forward_and_collect(hidden);
                        pruners_[index]->add_stats_seconds(seconds_since(start));
                        return output;
                      });
    progress.update(s + 1);
  }
  runner.release_embedding();
}

void DensePruneSteps::run(LayerRun& run, const ActivationStore*, ActivationStore*) {
  run.begin(LayerPass::kMask);
  LayerPruner& pruner = *pruners_[index_of(run.layer())];
  while (!pruner.done()) pruner.prune_current_group();
}

void DensePruneSteps::commit(int64_t layer) {
  const size_t i = index_of(layer);
  pruned_.add(stored_[i], pruners_[i]->result());
  pruners_[i].reset();
}

}  // namespace pipeprune
