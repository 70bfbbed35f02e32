// Pruning one decoder layer from the calibration activations that enter it: the pruning logic
// of a layer, with no knowledge of ranks, files or where the activations are kept.
//
// A LayerPruner holds one layer's weights (stored dtype, and a compute copy on the compute
// device) and the pruners of the linears being pruned. Whoever sequences the passes (the
// runner's prune steps, dist/prune_steps.h) feeds it:
//  - stats passes: collect() once per calibration sample, feeding every linear's input of the
//    current group to its pruner (forward_and_collect() when the layer output is wanted too, as
//    dense calibration does); then prune_current_group(). With
//    true_sequential the linears are pruned in the groups [q,k,v] -> [o] -> [gate,up] ->
//    [down], each group's stats pass running with the earlier groups already pruned; without
//    it there is one group of all seven.
//  - the output pass: forward() once per sample with the pruned weights.
// Pruned weights are cast back to the stored dtype and upcast again before any later forward,
// exactly as a model held in the stored dtype computes. One thread; the layer it prunes must
// outlive it.
//
// Sample-parallel (--parallel samples, StatisticMode::kBlockSums): every rank holds a
// LayerPruner of the layer and runs the stats pass over its own samples; after each block of
// samples the caller takes each statistic's block sum (statistic_linears, take_block_sum) and
// reduces it to the rank pruning that input's linears, which sets the reduced sums
// (set_statistic_from_sum) and prunes them (prune_in_group); every rank then takes the other
// linears' pruned weights from the ranks that pruned them (finish_group).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "core/model/decoder.h"
#include "core/model/layer_weights.h"
#include "core/prune/pruner.h"

namespace pipeprune {

struct LayerPruneOptions {
  PruneOptions prune;
  bool true_sequential = false;  // four groups instead of one (see above)
  c10::Device device = c10::Device(c10::kCPU);
  c10::ScalarType compute_dtype = c10::ScalarType::Float;
  // kBlockSums for sample-parallel calibration (see "Sample-parallel" below).
  StatisticMode statistics = StatisticMode::kRunningMean;
  // Per-layer unstructured targets (OWL's or the user's, core/prune/sparsity_profile.h), indexed
  // by model layer; empty: prune.pattern.sparsity for every layer.
  std::vector<double> layer_sparsity;
};

struct LinearPruneResult {
  int64_t numel = 0;
  int64_t zeros = 0;  // zeros in the stored weight after pruning
  double seconds_mask = 0;
};

struct LayerPruneResult {
  int64_t layer = 0;
  std::array<LinearPruneResult, kNumLinears> linears;
  double seconds_stats = 0;   // stats passes (forward with taps)
  double seconds_prune = 0;   // mask selection and weight updates
  double seconds_output = 0;  // output pass
  double seconds_reduce = 0;  // --parallel samples: in the statistics' reduction (part of the stats passes)
  int64_t bytes_statistics = 0;
};

class LayerPruner {
 public:
  // `stored` is the layer in its stored dtype on the CPU; it is pruned in place. ConfigError
  // (PruneOptions::validate) when the options do not fit this model.
  LayerPruner(DecoderLayerWeights& stored, const ModelConfig& config, const RopeTables& rope,
              const LayerPruneOptions& options);
  ~LayerPruner();

  // Number of linear groups (1, or 4 with true_sequential) and whether all are pruned.
  bool done() const;
  // Runs one sample ([1, seqlen, hidden], compute dtype) through the layer with the current
  // group's taps; returns the layer output.
  at::Tensor forward_and_collect(const at::Tensor& input);
  // The same taps without the layer output: the forward stops at the input of the group's last
  // linear (decoder_layer_linear_inputs). For stats passes whose output nobody reads.
  void collect(const at::Tensor& input);
  // Runs one sample through the layer without taps (current weights).
  at::Tensor forward(const at::Tensor& input) const;
  // Prunes the current group's linears and moves to the next group.
  void prune_current_group();
  // The linears of the current group.
  const std::vector<LinearKind>& current_group() const;
  // The current group's linears that hold statistics, one per distinct input (k, v and up get
  // copies of q's and gate's when they are pruned), in layer order.
  std::vector<LinearKind> statistic_linears() const;
  at::Tensor take_block_sum(LinearKind kind);
  void set_statistic_from_sum(LinearKind kind, at::Tensor sum, int64_t n_samples);
  // prune_current_group() in two halves, for a group whose linears are pruned on several ranks:
  // prunes the linears of the current group listed in `mine` (with every linear reading the
  // same input), then takes the others' pruned weights (stored dtype, CPU) from
  // `pruned_elsewhere` and moves to the next group.
  void prune_in_group(const std::vector<LinearKind>& mine);
  void finish_group(const std::function<at::Tensor(LinearKind)>& pruned_elsewhere);
  // OWL's outlier density of the layer in percent (core/prune/outlier_density.h) from the
  // Wanda statistics the stats pass collected: for a pruner made with method wanda and one group
  // of every linear, before it prunes (the outlier pass never prunes).
  double outlier_percent(double m) const;
  void add_stats_seconds(double s) { result_.seconds_stats += s; }
  void add_output_seconds(double s) { result_.seconds_output += s; }
  void add_reduce_seconds(double s) { result_.seconds_reduce += s; }
  const LayerPruneResult& result() const { return result_; }

 private:
  void make_pruners();
  LinearPruner& statistic_holder(LinearKind kind);
  // Stores a pruned weight (stored dtype, CPU), refreshes its compute copy (into
  // `compute_buffer`, the fp32 tensor it was rounded from, where that fits) and counts its zeros.
  void store_pruned(LinearKind kind, at::Tensor weight, at::Tensor compute_buffer = {});

  DecoderLayerWeights& stored_;
  const ModelConfig& config_;
  const RopeTables& rope_;
  LayerPruneOptions options_;
  DecoderLayerWeights compute_;
  std::vector<std::vector<LinearKind>> groups_;
  size_t group_ = 0;
  std::array<std::unique_ptr<LinearPruner>, kNumLinears> pruners_;
  std::array<bool, kNumLinears> pruned_here_{};  // in the current group
  double group_seconds_ = 0;
  LinearTap tap_;
  LayerPruneResult result_;
};

}  // namespace pipeprune
