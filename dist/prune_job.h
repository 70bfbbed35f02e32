// `pipeprune prune`: the product's main job, through the stage pipeline.
//
// Every rank opens its stage (headers only), the first rank draws the calibration windows and
// embeds them, each rank prunes its own decoder layers (sequential or dense calibration, see
// dist/layer_pruning.h), activations stream rank to rank sample by sample, each rank writes its
// pruned layers into the output's planned shards, and the first rank renames the finished folder
// into place. Only then is the pruned model evaluated (--eval-data): an evaluation failure is a
// warning, never a lost model. Collective: every rank calls run_prune_job.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "core/data/calibration.h"
#include "dist/layer_pruning.h"
#include "dist/transport/transport.h"

namespace pipeprune {

struct PruneJobOptions {
  std::filesystem::path model_dir;
  std::filesystem::path output;
  bool overwrite = false;
  LayerPruneOptions layer;
  CalibrationOptions calibration;
  std::optional<int64_t> max_shard_bytes;
  std::optional<int64_t> budget_bytes;
  std::filesystem::path eval_data;  // empty: no evaluation
  int64_t eval_max_chunks = 0;
  bool eval_dense = false;          // also evaluate the input model first
  std::filesystem::path report;     // empty: no report
  std::filesystem::path spill_dir;  // empty: next to the output folder
  bool log_memory = false;
  std::filesystem::path memory_log_csv = "memory_log.csv";
};

struct PruneJobResult {
  double overall_sparsity = 0;
  std::optional<double> perplexity_dense;
  std::optional<double> perplexity_pruned;
  double seconds = 0;
};

PruneJobResult run_prune_job(Transport& transport, const PruneJobOptions& options);

}  // namespace pipeprune
