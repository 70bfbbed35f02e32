#include "dist/layer_pass.h"

namespace pipeprune {

const char* layer_pass_name(LayerPass pass) {
  switch (pass) {
    case LayerPass::kLoad: return "load";
    case LayerPass::kStats: return "stats";
    case LayerPass::kMask: return "mask";
    case LayerPass::kOutput: return "output";
    case LayerPass::kEval: return "eval";
  }
  return "?";
}

std::optional<LayerPass> parse_layer_pass(const std::string& name) {
  for (LayerPass pass : {LayerPass::kLoad, LayerPass::kStats, LayerPass::kMask, LayerPass::kOutput, LayerPass::kEval}) {
    if (name == layer_pass_name(pass)) return pass;
  }
  return std::nullopt;
}

}  // namespace pipeprune
