#include "dist/stage_plan.h"

#include <fmt/format.h>

#include <numeric>

#include "core/common/error.h"
#include "core/memory/host_memory.h"

namespace pipeprune {
namespace {

struct Split {
  bool feasible = false;
  std::vector<int64_t> ends;  // end layer of each rank
};

int64_t fixed_bytes(const ModelFootprint& model, size_t rank, size_t world) {
  int64_t bytes = 0;
  if (rank == 0) bytes += model.embedding_bytes;
  if (rank + 1 == world) bytes += model.head_bytes;
  return bytes;
}

// Greedy: each rank takes as many layers as keep bytes <= ratio * budget, leaving at least one
// layer for every later rank. Taking more never hurts later ranks, so greedy decides whether
// `ratio` is achievable.
Split split_at_ratio(const ModelFootprint& model, const std::vector<RankResources>& ranks, double ratio) {
  const auto n_layers = static_cast<int64_t>(model.layer_bytes.size());
  const size_t world = ranks.size();
  Split split;
  int64_t next = 0;
  for (size_t r = 0; r < world; ++r) {
    const double limit = ratio * static_cast<double>(std::max<int64_t>(ranks[r].budget_bytes, 1));
    const int64_t max_end = n_layers - static_cast<int64_t>(world - r - 1);
    double bytes = static_cast<double>(fixed_bytes(model, r, world));
    int64_t end = next;
    // Every rank must take at least one layer, even past the ratio (the ratio then fails below).
    while (end < max_end && (end == next || bytes + static_cast<double>(model.layer_bytes[end]) <= limit)) {
      bytes += static_cast<double>(model.layer_bytes[end]);
      ++end;
    }
    if (r + 1 == world) end = n_layers;
    double total = static_cast<double>(fixed_bytes(model, r, world));
    for (int64_t l = next; l < end; ++l) total += static_cast<double>(model.layer_bytes[l]);
    if (total > limit) return split;  // this rank cannot stay under the ratio
    split.ends.push_back(end);
    next = end;
  }
  split.feasible = next == n_layers;
  return split;
}

}  // namespace

int64_t ModelFootprint::total_bytes() const {
  return std::accumulate(layer_bytes.begin(), layer_bytes.end(), int64_t{0}) + embedding_bytes + head_bytes;
}

int StagePlan::owner_of_layer(int64_t layer) const {
  for (const Stage& stage : stages) {
    if (stage.owns_layer(layer)) return stage.rank;
  }
  PIPEPRUNE_FAIL(Error, "layer " << layer << " has no owner in the stage plan");
}

StagePlan plan_stages(const ModelFootprint& model, const std::vector<RankResources>& ranks) {
  const auto n_layers = static_cast<int64_t>(model.layer_bytes.size());
  const auto world = static_cast<int64_t>(ranks.size());
  PIPEPRUNE_CHECK(world >= 1, ConfigError, "a stage plan needs at least one rank");
  PIPEPRUNE_CHECK(world <= n_layers, ConfigError,
                  "world size " << world << " is larger than the model's " << n_layers
                                << " decoder layers; run with at most " << n_layers << " ranks");
  // Bisection on the largest bytes/budget ratio; the upper end always succeeds because every
  // split is feasible at a large enough ratio.
  double low = 0.0;
  double high = 1.0;
  while (!split_at_ratio(model, ranks, high).feasible) high *= 2.0;
  for (int i = 0; i < 64 && high - low > 1e-12 * high; ++i) {
    const double mid = 0.5 * (low + high);
    if (split_at_ratio(model, ranks, mid).feasible) high = mid; else low = mid;
  }
  const Split split = split_at_ratio(model, ranks, high);
  StagePlan plan;
  int64_t first = 0;
  for (int64_t r = 0; r < world; ++r) {
    Stage stage;
    stage.rank = static_cast<int>(r);
    stage.host = ranks[r].host;
    stage.device = ranks[r].device;
    stage.first_layer = first;
    stage.end_layer = split.ends[r];
    stage.has_embedding = r == 0;
    stage.has_head = r + 1 == world;
    stage.budget_bytes = ranks[r].budget_bytes;
    stage.bytes_weights = fixed_bytes(model, static_cast<size_t>(r), static_cast<size_t>(world));
    for (int64_t l = stage.first_layer; l < stage.end_layer; ++l) stage.bytes_weights += model.layer_bytes[l];
    first = stage.end_layer;
    plan.stages.push_back(stage);
  }
  return plan;
}

std::string format_stage_plan(const StagePlan& plan) {
  std::string out = fmt::format("{:>4}  {:<16} {:<8} {:<14} {:>12} {:>12}\n", "rank", "host", "device",
                                "layers", "weights", "budget");
  for (const Stage& s : plan.stages) {
    std::string layers = s.end_layer - s.first_layer == 1 ? std::to_string(s.first_layer)
                                                          : fmt::format("{}-{}", s.first_layer, s.end_layer - 1);
    if (s.has_embedding) layers = "emb+" + layers;
    if (s.has_head) layers += "+head";
    out += fmt::format("{:>4}  {:<16} {:<8} {:<14} {:>12} {:>12}\n", s.rank, s.host, s.device, layers,
                       format_bytes(s.bytes_weights), format_bytes(s.budget_bytes));
  }
  return out;
}

}  // namespace pipeprune
