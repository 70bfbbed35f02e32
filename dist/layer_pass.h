// The passes of one decoder layer's work, as the stage runner names them in its out-of-memory
// log line ("layer 3/32: the stats pass ran out of memory ...") and as fault injection targets
// them ("3:stats").
#pragma once

#include <optional>
#include <string>

namespace pipeprune {

enum class LayerPass {
  kLoad,    // reading the layer's weights and moving them to the compute device
  kStats,   // forward passes feeding the pruners' statistics
  kMask,    // mask selection and weight updates
  kOutput,  // forward passes with the pruned weights, producing the next layer's inputs
  kEval,    // forward passes of evaluation or generation
};

// "load", "stats", "mask", "output", "eval".
const char* layer_pass_name(LayerPass pass);
// The pass of that name, or nullopt.
std::optional<LayerPass> parse_layer_pass(const std::string& name);

}  // namespace pipeprune
