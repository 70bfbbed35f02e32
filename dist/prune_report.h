// The --report JSON of a prune job: settings, per-layer timings and measured sparsity of every
// linear, overall sparsity, perplexities, and peak memory per rank. Gathered on every rank
// (collective), written by the first rank.
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/prune/layer_pruner.h"
#include "dist/memory_plan.h"
#include "dist/stage_context.h"

namespace pipeprune {

struct PruneJobOptions;

struct PruneReport {
  nlohmann::json settings;
  std::vector<nlohmann::json> layers;  // ordered by layer
  std::vector<nlohmann::json> ranks;   // peak memory per rank
  // uniform / OWL / explicit: the per-layer targets (also each layer's "target_sparsity"), OWL's
  // outlier densities and its pass's time; null for a report without one.
  nlohmann::json sparsity_profile;
  std::optional<std::filesystem::path> memory_log;  // --log-memory's CSV (absolute), for `pipeprune report`
  std::optional<double> perplexity_dense;
  std::optional<double> perplexity_pruned;
  double seconds_total = 0;

  double overall_sparsity() const;
  nlohmann::json to_json() const;
};

nlohmann::json layer_result_json(const LayerPruneResult& result, const ModelConfig& config, int rank);

// Collective: every rank contributes its layers and memory figures.
PruneReport gather_prune_report(const StageContext& context, const PruneJobOptions& options,
                                const at::Tensor& windows, const std::vector<LayerPruneResult>& layers,
                                const MemoryPlan& memory);
// First rank only writes (atomically); other ranks return at once.
void write_prune_report(const StageContext& context, const PruneReport& report, const std::filesystem::path& path);

}  // namespace pipeprune
