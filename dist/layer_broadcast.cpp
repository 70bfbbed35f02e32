#include "dist/layer_broadcast.h"

#include <ATen/ATen.h>

namespace pipeprune {
namespace {

void broadcast_into(Transport& transport, at::Tensor& tensor, int root) {
  at::Tensor received = transport.broadcast(tensor, BroadcastOptions{root});
  if (transport.rank() != root) tensor = received.to(at::kCPU);
}

}  // namespace

void broadcast_layer(Transport& transport, DecoderLayerWeights& weights, const ModelConfig& config, int64_t layer,
                     int root) {
  if (transport.rank() != root) {
    weights = DecoderLayerWeights();
    weights.layer = layer;
  }
  for (NormKind kind : layer_norms(config)) broadcast_into(transport, weights.norm(kind), root);
  for (LinearKind kind : layer_linears(config)) {
    broadcast_into(transport, weights[kind].weight, root);
    if (linear_has_bias(config, kind)) broadcast_into(transport, weights[kind].bias, root);
  }
}

void broadcast_head(Transport& transport, HeadWeights& head, int root) {
  broadcast_into(transport, head.norm, root);
  broadcast_into(transport, head.lm_head, root);
}

}  // namespace pipeprune
