// The sequencer of one rank's stage: the only place that decides where the stage's inputs come
// from, walks its layers, retries a layer on the CPU after a device out-of-memory failure, and
// sends its outputs on. Jobs (prune, eval, generate) are per-layer steps it calls.
//
// Two walks over the same stage (DESIGN.md, "The prune loop"):
//  - layer-major, run_layers(): every sample through layer L, then through L+1 (sequential
//    calibration, streamed evaluation). The first layer's inputs are embedded (first rank) or
//    received from the previous rank into an activation store; each layer's outputs become the
//    next layer's inputs; once the stage's last layer is done its outputs are sent to the next
//    rank, or on the last rank handed back to the job (or, when it has no use for them, never
//    computed).
//  - sample-parallel, run_layers_on_samples() (--parallel samples, DESIGN.md "Two ways to
//    spread the work"): every rank walks every decoder layer of the model, over its own share
//    of the samples (dist/sample_split.h). The first rank embeds every sample and sends each to
//    the rank holding it; activations then never leave their rank. The step itself moves the
//    layer from its owner and reduces statistics to it; since those are collective, a device
//    out-of-memory failure there is an error, not a CPU retry (one rank cannot start a layer
//    over alone).
//  - sample-major, run_sample(): one batch of tokens through every owned layer (dense
//    calibration, resident evaluation, generation): embedded or received, through the layers,
//    sent on, or returned on the last rank.
//
// Out of memory: a step runs on the compute device; if an allocation there fails
// (c10::OutOfMemoryError, or an injected one), the runner logs the layer and the pass, frees
// the device caches and runs the whole step again on the CPU from the layer's inputs, so a
// layer's results are all from the device or all from the CPU, never a mix; the next layer
// tries the device again. Outputs leave the rank only after the layer that produced them has
// succeeded. A step that cannot start over (a KV cache on the device, statistics summed over
// samples already seen) is run with RetryPolicy::kFail and gets a clear OutOfMemoryError.
//
// Fault injection: before each layer and each pass the runner asks its FaultInjector
// (dist/fault_injection.h), so tests can fail any of them on purpose.
//
// Collective with the neighbouring stages: the ranks of a job run the same walks with the same
// sample counts and tags, in the same order. One thread.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/memory/activation_store.h"
#include "core/model/decoder.h"
#include "core/model/layer_weights.h"
#include "dist/fault_injection.h"
#include "dist/layer_pass.h"
#include "dist/sample_split.h"
#include "dist/stage_context.h"

namespace pipeprune {

// Message tags, one per activation stream, so streams of different phases never match.
constexpr int kTagCalibration = 11;
constexpr int kTagEvaluation = 12;
constexpr int kTagGeneration = 13;
constexpr int kTagOutliers = 14;  // OWL's outlier pass (dist/outlier_pass.h)

enum class RetryPolicy { kRetryOnCpu, kFail };

// One attempt of a step on one layer: where it runs this time and the pass it is in.
class LayerRun {
 public:
  LayerRun(int64_t layer, c10::Device device, const RopeTables& rope, FaultInjector& faults)
      : layer_(layer), device_(device), rope_(rope), faults_(faults) {}
  int64_t layer() const { return layer_; }
  // The compute device, or the CPU on a retry.
  c10::Device device() const { return device_; }
  // Rotary tables on device().
  const RopeTables& rope() const { return rope_; }
  // Marks the start of a pass: the runner names it if the attempt runs out of memory, and the
  // fault injector may fail it.
  void begin(LayerPass pass);
  LayerPass pass() const { return pass_; }

 private:
  int64_t layer_;
  c10::Device device_;
  const RopeTables& rope_;
  FaultInjector& faults_;
  LayerPass pass_ = LayerPass::kLoad;
};

// A job's work on one layer of a layer-major walk.
class LayerStep {
 public:
  virtual ~LayerStep() = default;
  // Runs the layer over every sample of `inputs` (null in a walk without activations) and
  // fills `outputs` (null when nothing downstream needs them). Must start from scratch each
  // time: after an out-of-memory failure the runner calls it again with a CPU run.
  virtual void run(LayerRun& run, const ActivationStore* inputs, ActivationStore* outputs) = 0;
  // After run() succeeded: keep its results (write the pruned layer, log progress).
  virtual void commit(int64_t layer) = 0;
};

// An activation store for n samples; `name` tells its spill file apart (dist/memory_plan.h).
using StoreFactory = std::function<std::unique_ptr<ActivationStore>(int64_t n_samples, const std::string& name)>;

struct LayerWalk {
  int tag = kTagCalibration;
  // Token windows [n_samples, seqlen]: the ids on the first rank, a tensor of the right shape
  // elsewhere. Undefined: a walk without activations (magnitude pruning, dense masks).
  at::Tensor windows;
  StoreFactory make_store;
  // On the last rank: compute the model's last layer's outputs and return them (eval's head).
  bool keep_final_outputs = false;
  RetryPolicy retry = RetryPolicy::kRetryOnCpu;
};

class StageRunner {
 public:
  // Rotary tables are made for n_positions positions (the longest sequence of the job).
  StageRunner(const StageContext& context, int64_t n_positions, FaultInjector& faults = no_faults());

  const StageContext& context() const { return context_; }

  // The layer-major walk. Returns the stage's final outputs on the last rank when
  // walk.keep_final_outputs, else null.
  std::unique_ptr<ActivationStore> run_layers(const LayerWalk& walk, LayerStep& step);

  // The sample-parallel walk over every layer of the model; `split` says which samples of
  // walk.windows this rank holds (store index = SampleSplit::local_index). Returns this rank's
  // final outputs when walk.keep_final_outputs, else null.
  std::unique_ptr<ActivationStore> run_layers_on_samples(const LayerWalk& walk, const SampleSplit& split,
                                                         LayerStep& step);

  // One owned layer (its index within the stage) on `run`: takes the hidden states on
  // run.device() and returns the layer's output there.
  using SampleStep = std::function<at::Tensor(LayerRun& run, size_t index, const at::Tensor& hidden)>;
  // The sample-major walk of one batch: tokens [batch, n] (ids read on the first rank only;
  // the shape everywhere). Each layer is one attempt of `pass` under `retry`. Returns the
  // stage's output on the last rank ([batch, n, hidden], compute device and dtype) and an
  // undefined tensor elsewhere (it was sent on).
  at::Tensor run_sample(const at::Tensor& tokens, int tag, LayerPass pass, RetryPolicy retry,
                        const SampleStep& step);
  // Frees what run_sample() keeps between calls (the embedding table on the first rank).
  void release_embedding() { embedding_.reset(); }

 private:
  // Runs one step on the compute device, and again on the CPU after an out-of-memory failure.
  void with_retry(int64_t layer, RetryPolicy retry, const std::function<void(LayerRun&)>& attempt);
  const RopeTables& rope_on(c10::Device device);
  const EmbeddingWeights& embedding();
  // The hidden states of one batch entering the stage: embedded on the first rank, received from
  // the previous rank elsewhere (the only place either happens).
  at::Tensor stage_input(const at::Tensor& tokens, int tag);
  // Sends the stage's output for one batch to the next rank.
  void hand_on(const at::Tensor& hidden, int tag);

  const StageContext& context_;
  FaultInjector& faults_;
  int64_t n_positions_;
  RopeTables rope_;
  std::optional<RopeTables> cpu_rope_;
  // Kept between run_sample() calls (first rank), loaded only while a layer-major walk embeds.
  std::optional<EmbeddingWeights> embedding_;
};

}  // namespace pipeprune
