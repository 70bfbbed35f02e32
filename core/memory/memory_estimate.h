// What one rank of a job will hold at its peak, computed from the model's shapes alone: the
// estimator behind `pipeprune estimate`, the planner's budget checks and placements, and the
// estimated-versus-measured figures of the prune report.
//
// Every byte the pipeline holds has an owner here (see DESIGN.md, "Memory is planned"):
//  baseline     the process itself: libraries, thread pools, BLAS buffers (measured at run
//               time by runtime_baseline_bytes(), or a fixed figure for a config-only estimate)
//  weights      one decoder layer in its stored dtype plus its compute copy (streamed layers),
//               or every owned layer (resident placements and dense calibration)
//  activations  the calibration (or evaluation) hidden states entering and leaving the current
//               layer, in the compute dtype, up to the RAM allowed for them (the rest spills)
//  statistics   per linear: cols floats (Wanda) or cols^2 floats (SparseGPT), for the linears
//               pruned together
//  scratch      the larger of one sample's forward temporaries and the mask computation's
// The peak is taken over the phases of the job (embedding, each layer, saving), not summed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/model/model_spec.h"
#include "core/prune/pruner.h"

namespace pipeprune {

// The layers a rank owns and whether it holds the embedding / the head.
struct StageShare {
  int64_t first_layer = 0;
  int64_t end_layer = 0;
  bool embedding = false;
  bool head = false;
};

struct EstimateSettings {
  PruneMethod method = PruneMethod::kWanda;
  bool nm_pattern = false;
  bool true_sequential = false;
  bool dense_calibration = false;
  int64_t nsamples = 128;
  int64_t seqlen = 2048;
  int64_t compute_element_size = 4;  // fp32 compute
  int64_t baseline_bytes = 0;
  // RAM the activation stores may use; beyond it they spill to disk. < 0: unlimited.
  int64_t activation_ram_bytes = -1;
  // --parallel samples: every rank walks every layer of the model (stored + compute copy of one
  // layer at a time) over its own `local_samples` samples (the most any rank holds,
  // dist/sample_split.h); statistics are one block sum per distinct input, plus the reduced
  // totals of the inputs this rank prunes (core/prune/input_assignment.h) and one received block
  // sum. For layers another rank owns, the estimate takes the largest share any rank but the
  // owner can get.
  bool sample_parallel = false;
  int64_t local_samples = 0;
  int world_size = 1;
};

struct MemoryEstimate {
  int64_t baseline = 0;
  int64_t weights = 0;
  // The part of `weights` held in the checkpoint's dtype (the layer as loaded, pruned in place
  // and written from there; the embedding and head): on a GPU rank it stays in host RAM, the
  // compute copy (the rest) is on the device.
  int64_t weights_stored = 0;
  int64_t activations = 0;  // in RAM (spilled bytes are not counted)
  int64_t activations_spilled = 0;
  int64_t statistics = 0;
  int64_t scratch = 0;
  std::string peak_phase;  // which phase sets the peak, e.g. "layer 3"
  int64_t total() const { return baseline + weights + activations + statistics + scratch; }
};

// Activation stores a rank holds in a sequential prune (dist/stage_runner.h): the inputs of the
// current layer, and its outputs when a later owned layer, the next rank or the job needs them
// (the model's last layer's outputs are never computed). Each holds every sample.
int64_t prune_activation_stores(const StageShare& share, bool calibrated);
// The same for a rank of a job with these settings (--parallel samples: two, every rank walks
// every layer).
int64_t prune_activation_stores(const StageShare& share, const EstimateSettings& settings, int64_t n_model_layers);

// Every phase of a rank in `prune` (embedding, each layer or layer pass, saving), in order.
std::vector<MemoryEstimate> prune_phases(const ModelSpec& spec, const StageShare& share, const EstimateSettings& settings);
// Peak of a rank in `prune` (sequential or dense calibration): the largest of its phases.
MemoryEstimate estimate_prune_rank(const ModelSpec& spec, const StageShare& share, const EstimateSettings& settings);

// The smallest budget a prune rank can run in: every activation spilled but one sample of each
// store kept in RAM.
int64_t minimum_prune_budget(const ModelSpec& spec, const StageShare& share, const EstimateSettings& settings);

// Peak of a rank evaluating `n_windows` windows of `seqlen` tokens: layers resident in the
// compute dtype (resident = true) or streamed one at a time over all windows (false).
MemoryEstimate estimate_eval_rank(const ModelSpec& spec, const StageShare& share, int64_t n_windows,
                                  int64_t seqlen, int64_t compute_element_size, int64_t baseline_bytes,
                                  bool resident);

// Temporaries of one linear's mask computation beyond its statistics and its working copy, the
// mask included (measured on this LibTorch, 2048x5504 and 5504x2048: 2.0 weights for magnitude
// and Wanda, 1.3 for magnitude N:M, 1.65 Hessians + 1.2 weights for SparseGPT).
int64_t mask_scratch_bytes(PruneMethod method, bool nm_pattern, int64_t rows, int64_t cols);

// RSS of this process after a warm-up GEMM has made the BLAS allocate its buffers: the memory a
// pipeprune rank holds before any model data.
int64_t runtime_baseline_bytes();
// What a config-only estimate assumes for the baseline when it cannot measure (another machine).
constexpr int64_t kDefaultBaselineBytes = 200LL << 20;

}  // namespace pipeprune
