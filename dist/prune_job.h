// `pipeprune prune`: the product's main job, through the stage pipeline.
//
// Every rank opens its stage (headers only), the first rank draws the calibration windows, and
// the stage runner (dist/stage_runner.h) walks each rank's decoder layers with the prune steps
// of the chosen calibration mode (dist/prune_steps.h): activations stream rank to rank, each
// rank writes its pruned layers into the output's planned shards (dist/model_writer.h), and the
// first rank renames the finished folder into place. Only then is the pruned model evaluated
// (--eval-data): an evaluation failure is a warning, never a lost model. Collective: every rank
// calls run_prune_job.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "core/data/calibration.h"
#include "core/prune/layer_pruner.h"
#include "core/prune/sparsity_profile.h"
#include "dist/fault_injection.h"
#include "dist/layer_broadcast.h"
#include "dist/parallel_mode.h"
#include "dist/transport/transport.h"

namespace pipeprune {

// Sequential: each layer is calibrated on the outputs of the already pruned layers before it
// (the references' method). Dense: every layer on the dense model's activations, so the ranks
// calibrate at once (faster with many ranks, slightly lower quality).
enum class CalibrationMode { kSequential, kDense };

struct PruneJobOptions {
  std::filesystem::path model_dir;
  std::filesystem::path output;
  bool overwrite = false;
  // Continue the unfinished run a staged output folder holds (dist/model_writer.h).
  bool resume = false;
  LayerPruneOptions layer;  // method and settings, groups, device and compute dtype
  // How the sparsity is spread over the layers (uniform, OWL, the user's list); the job resolves
  // it into layer.layer_sparsity (OWL after its outlier pass, dist/outlier_pass.h).
  SparsityProfile profile;
  CalibrationMode calibration_mode = CalibrationMode::kSequential;
  ParallelMode parallel = ParallelMode::kPipeline;
  int64_t sample_block = 0;  // samples per reduction block; 0: automatic (dist/sample_split.h)
  LayerSource layer_source = LayerSource::kAuto;  // how every rank gets each layer (samples mode)
  CalibrationOptions calibration;
  std::optional<int64_t> max_shard_bytes;
  std::optional<int64_t> budget_bytes;
  std::optional<int64_t> host_budget_bytes;  // GPU ranks: host RAM (offloaded activations)
  std::filesystem::path eval_data;  // empty: no evaluation
  int64_t eval_max_chunks = 0;
  bool eval_dense = false;          // also evaluate the input model first
  std::filesystem::path report;     // empty: no report
  std::filesystem::path spill_dir;  // empty: next to the output folder
  bool log_memory = false;
  std::filesystem::path memory_log_csv = "memory_log.csv";
  std::shared_ptr<FaultInjector> faults;  // tests only; null: none

  // The one check of a prune job's options (ConfigError naming the flag): the pruning options
  // (PruneOptions::validate) and the calibration windows. The CLI calls it before anything
  // starts; the job calls the second form against the model before any work.
  void validate() const;
  void validate(const ModelConfig& config) const;
};

struct PruneJobResult {
  double overall_sparsity = 0;
  std::optional<double> perplexity_dense;
  std::optional<double> perplexity_pruned;
  double seconds = 0;
};

PruneJobResult run_prune_job(Transport& transport, const PruneJobOptions& options);

}  // namespace pipeprune
