// The prune job's steps for the stage runner (dist/stage_runner.h): the pruning logic is
// core/prune/layer_pruner.h; these only feed it samples in the order each calibration mode
// prescribes and hand the pruned layers on.
//  - sequential calibration (the default, as the Wanda and SparseGPT references do it): one
//    layer-major step per layer: load it, stats pass over every sample, prune, output pass with
//    the pruned weights producing the next layer's inputs (prune_layer_sequential).
//  - dense calibration: every owned layer is loaded at once and sees the dense model's
//    activations, one sample at a time through the whole stage (a sample-major walk), and then
//    each layer is pruned from what it collected (a layer-major walk without activations).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/common/progress.h"
#include "core/memory/activation_store.h"
#include "core/prune/layer_pruner.h"
#include "dist/job_memory_log.h"
#include "dist/model_writer.h"
#include "dist/sample_split.h"
#include "dist/stage_runner.h"
#include "dist/transport/transport.h"

namespace pipeprune {

// A layer an earlier run finished (resume): its result as the report counts it (numel and zeros
// of the pruned linears; no timings), and, when `outputs` is given, its outputs over `inputs`
// computed with the pruned weights, as the next layer's inputs.
LayerPruneResult forward_finished_layer(const DecoderLayerWeights& pruned, const ModelConfig& config,
                                        const RopeTables& rope, const ActivationStore* inputs,
                                        ActivationStore* outputs, c10::Device device, c10::ScalarType compute_dtype);

// Prunes `stored` in place from `inputs` ([1, seqlen, hidden] per sample; null for a method
// that needs no activations) and fills `outputs` with the pruned layer's outputs (null: not
// needed). `begin_pass` is called as each pass starts (the runner's LayerRun::begin).
LayerPruneResult prune_layer_sequential(DecoderLayerWeights& stored, const ModelConfig& config,
                                        const RopeTables& rope, const ActivationStore* inputs,
                                        ActivationStore* outputs, const LayerPruneOptions& options,
                                        const std::function<void(LayerPass)>& begin_pass = {});

// The output pass: every sample of `inputs` through the layer (its current weights) into
// `outputs`, with sample-level progress when it runs long.
void output_pass(LayerPruner& pruner, const std::string& where, const ActivationStore& inputs, ActivationStore& outputs,
                 c10::Device device);

// Sample-parallel statistics of the pruner's current group: the stats pass over this rank's
// blocks of `split` (store index = local index), each block's sum for every input in `kinds`
// reduced in block order to `roots` (one per kind), which then hold the statistic
// (LayerPruner::set_statistic_from_sum). Collective over the ranks of the split.
void reduce_block_statistics(Transport& transport, int rank, const SampleSplit& split, LayerPruner& pruner,
                             const ActivationStore& inputs, const std::vector<LinearKind>& kinds,
                             const std::vector<int>& roots, c10::Device device);

// Where the steps put each pruned layer: the output checkpoint, the job's results, the
// progress line and the memory log.
class PrunedLayers {
 public:
  PrunedLayers(ModelWriter& writer, JobMemoryLog& memory_log, int64_t n_stage_layers, int64_t n_model_layers);
  // Writes the layer (unless an earlier run did: resumed) and records its result.
  void add(const DecoderLayerWeights& layer, const LayerPruneResult& result, bool resumed = false);
  const std::vector<LayerPruneResult>& results() const { return results_; }
  // Resume: whether an earlier run finished this layer.
  bool done(int64_t layer) const { return writer_.done_layers().count(layer) > 0; }
  // For a layer an earlier run finished: reads it back into `stored` as it wrote it, computes
  // its outputs over `inputs` (forward_finished_layer) and returns true; false otherwise.
  bool resume_layer(LayerRun& run, const ModelConfig& config, c10::ScalarType compute_dtype,
                    const ActivationStore* inputs, ActivationStore* outputs, DecoderLayerWeights& stored,
                    LayerPruneResult& result);

 private:
  ModelWriter& writer_;
  std::optional<SafetensorsCheckpoint> staged_;
  JobMemoryLog& memory_log_;
  int64_t n_model_layers_;
  Progress progress_;
  std::vector<LayerPruneResult> results_;
};

// Sequential calibration: one layer at a time, loaded from the checkpoint in run().
class SequentialPruneStep final : public LayerStep {
 public:
  SequentialPruneStep(const StageContext& context, const LayerPruneOptions& options, PrunedLayers& pruned);
  void run(LayerRun& run, const ActivationStore* inputs, ActivationStore* outputs) override;
  void commit(int64_t layer) override;

 private:
  const StageContext& context_;
  LayerPruneOptions options_;
  PrunedLayers& pruned_;
  DecoderLayerWeights stored_;
  LayerPruneResult result_;
  bool resumed_ = false;  // this layer was finished by an earlier run
};

// Sample-parallel sequential calibration (--parallel samples), one model layer per call on every
// rank: every rank gets the layer (dist/layer_broadcast.h) and runs the stats pass over its own
// samples, reducing each block's statistic sums round by round (dist/sample_split.h) to the
// rank that prunes that input's linears (core/prune/input_assignment.h: the inputs are spread
// over the ranks by cost); each pruned linear is broadcast from the rank that pruned it; every
// rank runs the output pass over its samples. The layer's owner commits (writes) the layer. Byte-identical results at every world size (the reduction's fixed
// order); within float rounding of the default mode (a different summation order).
class SampleParallelPruneStep final : public LayerStep {
 public:
  // read_everywhere: every rank reads the layer from the checkpoint instead of receiving it
  // from its owner (dist/layer_broadcast.h).
  SampleParallelPruneStep(const StageContext& context, const LayerPruneOptions& options, const SampleSplit& split,
                          bool read_everywhere, PrunedLayers& pruned);
  void run(LayerRun& run, const ActivationStore* inputs, ActivationStore* outputs) override;
  void commit(int64_t layer) override;

 private:
  const StageContext& context_;
  LayerPruneOptions options_;
  const SampleSplit& split_;
  bool read_everywhere_;
  PrunedLayers& pruned_;
  Progress progress_;
  DecoderLayerWeights stored_;
  LayerPruneResult result_;
  bool resumed_ = false;
};

// Dense calibration of every owned layer at once.
class DensePruneSteps final : public LayerStep {
 public:
  // Loads every owned layer; rotary tables for windows of n_positions tokens.
  DensePruneSteps(const StageContext& context, const LayerPruneOptions& options, int64_t n_positions,
                  PrunedLayers& pruned);
  ~DensePruneSteps() override;
  // The stats passes: every sample of `windows` through the stage (embedded or received, sent on).
  void collect(StageRunner& runner, const at::Tensor& windows);
  // The mask phase, one owned layer per call (a layer-major walk without activations).
  void run(LayerRun& run, const ActivationStore* inputs, ActivationStore* outputs) override;
  void commit(int64_t layer) override;

 private:
  size_t index_of(int64_t layer) const;

  const StageContext& context_;
  PrunedLayers& pruned_;
  RopeTables rope_;  // the pruners hold references to it and to stored_
  std::vector<DecoderLayerWeights> stored_;
  std::vector<std::unique_ptr<LayerPruner>> pruners_;
};

}  // namespace pipeprune
