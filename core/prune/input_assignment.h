// Which rank prunes which linears of a layer under --parallel samples: the linears reading one
// input (q, k, v; gate, up; o; down) go together, since they need the same reduced statistic,
// and the inputs are dealt to ranks by their estimated pruning cost (longest first, each to the
// least loaded rank, ties to the layer's owner and then the ranks after it), so the owner does
// not prune a whole layer alone while the others wait. Pure arithmetic on the config: every
// rank computes the same assignment, and since a linear's pruning gives the same bits on any
// rank, the assignment never changes the result.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "core/model/layer_weights.h"
#include "core/prune/prune_options.h"

namespace pipeprune {

// Relative cost of pruning the linears reading `input` (its input_owner). SparseGPT, per linear:
// rows x cols for the column sweep (its per-column updates dominate) plus cols^3 / 14700 for the
// Hessian chain, fitted on one CPU thread to TinyLlama's shapes (down_proj 6.3 s, gate 3.0 s,
// q 1.06 s, k 0.35 s); Wanda and magnitude, rows x cols.
double pruning_cost(const ModelConfig& config, PruneMethod method, LinearKind input);

// For each input of `inputs` (input owners, layer order), the rank that prunes its linears.
std::vector<int> assign_inputs(const ModelConfig& config, PruneMethod method, const std::vector<LinearKind>& inputs,
                               int world_size, int owner);

}  // namespace pipeprune
