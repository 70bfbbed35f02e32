#include "core/prune/input_assignment.h"

#include <algorithm>
#include <numeric>

#include "core/common/error.h"

namespace pipeprune {

double pruning_cost(const ModelConfig& config, PruneMethod method, LinearKind input) {
  double cost = 0;
  for (LinearKind kind : layer_linears(config)) {
    if (input_owner(kind) != input) continue;
    const auto shape = linear_shape(config, kind);
    const double rows = static_cast<double>(shape[0]);
    const double cols = static_cast<double>(shape[1]);
    cost += rows * cols + (method == PruneMethod::kSparseGPT ? cols * cols * cols / 14700.0 : 0.0);
  }
  return cost;
}

std::vector<int> assign_inputs(const ModelConfig& config, PruneMethod method, const std::vector<LinearKind>& inputs,
                               int world_size, int owner) {
  PIPEPRUNE_CHECK(world_size >= 1 && owner >= 0 && owner < world_size, Error,
                  "assign_inputs: owner " << owner << " of " << world_size << " ranks");
  std::vector<size_t> order(inputs.size());
  std::iota(order.begin(), order.end(), 0);
  // Longest first; equal costs in layer order.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return pruning_cost(config, method, inputs[a]) > pruning_cost(config, method, inputs[b]);
  });
  std::vector<double> load(static_cast<size_t>(world_size), 0.0);
  std::vector<int> rank_of(inputs.size(), owner);
  for (size_t i : order) {
    int best = owner;
    for (int step = 1; step < world_size; ++step) {
      const int r = (owner + step) % world_size;
      if (load[static_cast<size_t>(r)] < load[static_cast<size_t>(best)]) best = r;
    }
    rank_of[i] = best;
    load[static_cast<size_t>(best)] += pruning_cost(config, method, inputs[i]);
  }
  return rank_of;
}

}  // namespace pipeprune
