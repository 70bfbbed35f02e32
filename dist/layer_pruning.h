// Pruning one decoder layer from the calibration activations that enter it.
//
// A LayerPruneSession holds one layer's weights (stored dtype, and a compute copy on the
// compute device) and the pruners of the linears being pruned. Drivers:
//  - sequential calibration (the default, as the Wanda and SparseGPT references do it):
//    prune_layer_sequential() runs a stats pass feeding every linear's input to its pruner,
//    prunes, then an output pass with the pruned weights producing the next layer's inputs.
//    With true_sequential the linears are pruned in the groups [q,k,v] -> [o] -> [gate,up] ->
//    [down], each group's stats pass running with the earlier groups already pruned.
//  - dense calibration: the caller feeds samples through several sessions (one per layer,
//    dense weights) with forward_and_collect(), then calls prune_current_group() on each.
// Pruned weights are cast back to the stored dtype and upcast again before any later forward,
// exactly as a model held in the stored dtype computes. Knows nothing of ranks or files.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "core/memory/activation_store.h"
#include "core/model/decoder.h"
#include "core/model/layer_weights.h"
#include "core/prune/pruner.h"

namespace pipeprune {

enum class CalibrationMode { kSequential, kDense };

struct LayerPruneOptions {
  PruneOptions prune;
  bool true_sequential = false;
  CalibrationMode calibration = CalibrationMode::kSequential;
  c10::Device device = c10::Device(c10::kCPU);
  c10::ScalarType compute_dtype = c10::ScalarType::Float;
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
  int64_t bytes_statistics = 0;
};

// Whether this method needs calibration activations at all (magnitude does not).
bool needs_activations(const PruneOptions& options);

class LayerPruneSession {
 public:
  // `stored` is the layer in its stored dtype on the CPU; the session prunes it in place.
  LayerPruneSession(DecoderLayerWeights& stored, const ModelConfig& config, const RopeTables& rope,
                    const LayerPruneOptions& options);
  ~LayerPruneSession();

  // Number of linear groups (1, or 4 with true_sequential) and whether all are pruned.
  bool done() const;
  // Runs one sample ([1, seqlen, hidden], compute dtype) through the layer with the current
  // group's taps; returns the layer output.
  at::Tensor forward_and_collect(const at::Tensor& input);
  // Runs one sample through the layer without taps (current weights).
  at::Tensor forward(const at::Tensor& input) const;
  // Prunes the current group's linears and moves to the next group.
  void prune_current_group();
  void add_stats_seconds(double s) { result_.seconds_stats += s; }
  void add_output_seconds(double s) { result_.seconds_output += s; }
  const LayerPruneResult& result() const { return result_; }

 private:
  void make_pruners();

  DecoderLayerWeights& stored_;
  const ModelConfig& config_;
  const RopeTables& rope_;
  LayerPruneOptions options_;
  DecoderLayerWeights compute_;
  std::vector<std::vector<LinearKind>> groups_;
  size_t group_ = 0;
  std::array<std::unique_ptr<LinearPruner>, kNumLinears> pruners_;
  LinearTap tap_;
  LayerPruneResult result_;
};

// The sequential driver: prunes `stored` in place from `inputs` ([1, seqlen, hidden] per
// sample) and fills `outputs` with the pruned layer's outputs (null: not needed). Both may be
// null for a method that needs no activations. `operation`, when given, names the pass running
// ("stats", "mask", "output") so a failure can be reported with it.
LayerPruneResult prune_layer_sequential(DecoderLayerWeights& stored, const ModelConfig& config,
                                        const RopeTables& rope, const ActivationStore* inputs,
                                        ActivationStore* outputs, const LayerPruneOptions& options,
                                        const char** operation = nullptr);

}  // namespace pipeprune
