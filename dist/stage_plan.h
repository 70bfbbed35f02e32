// Which rank owns which decoder layers: contiguous runs of layers per rank, the embedding on
// the first rank, the final norm and lm_head on the last.
//
// Every rank computes the plan from the same inputs (model sizes from headers, all ranks'
// budgets after an all-gather), so every rank holds the same plan without sending it around.
// Planning is pure arithmetic: no weights are read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pipeprune {

// Byte sizes of the parts of a model, as stored.
struct ModelFootprint {
  std::vector<int64_t> layer_bytes;  // one entry per decoder layer
  int64_t embedding_bytes = 0;
  int64_t head_bytes = 0;  // final norm + lm_head (0 extra when tied to the embedding)
  int64_t total_bytes() const;
};

// One rank's resources as it reports them.
struct RankResources {
  std::string host;
  std::string device;        // "cpu", "cuda:0", ...
  int64_t budget_bytes = 0;  // memory this rank may use for weights
};

struct Stage {
  int rank = 0;
  std::string host;
  std::string device;
  int64_t first_layer = 0;  // owned layers: [first_layer, end_layer)
  int64_t end_layer = 0;
  bool has_embedding = false;
  bool has_head = false;
  int64_t bytes_weights = 0;
  int64_t budget_bytes = 0;
  int64_t n_layers() const { return end_layer - first_layer; }
  bool owns_layer(int64_t layer) const { return layer >= first_layer && layer < end_layer; }
};

struct StagePlan {
  std::vector<Stage> stages;  // stages[r] belongs to rank r
  int owner_of_layer(int64_t layer) const;
  int world_size() const { return static_cast<int>(stages.size()); }
  int64_t n_layers() const { return stages.empty() ? 0 : stages.back().end_layer; }
};

// Splits the layers into world-size contiguous runs (every rank at least one layer) that
// minimise the largest ratio of a rank's weight bytes to its budget. ConfigError when there
// are more ranks than layers, stating both numbers.
StagePlan plan_stages(const ModelFootprint& model, const std::vector<RankResources>& ranks);

// A fixed-width table: rank, host, device, layers, weight bytes, budget.
std::string format_stage_plan(const StagePlan& plan);

}  // namespace pipeprune
