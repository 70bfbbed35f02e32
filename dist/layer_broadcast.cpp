#include "dist/layer_broadcast.h"

#include <ATen/ATen.h>

#include "core/common/error.h"

namespace pipeprune {
namespace {

void broadcast_into(Transport& transport, at::Tensor& tensor, int root) {
  at::Tensor received = transport.broadcast(tensor, BroadcastOptions{root});
  if (transport.rank() != root) tensor = received.to(at::kCPU);
}

}  // namespace

LayerSource parse_layer_source(const std::string& name) {
  if (name == "auto") return LayerSource::kAuto;
  if (name == "owner") return LayerSource::kOwner;
  if (name == "checkpoint") return LayerSource::kCheckpoint;
  PIPEPRUNE_FAIL(ConfigError, "--layer-source must be auto, owner or checkpoint (got '" << name << "')");
}

bool every_rank_reads(LayerSource source, const StagePlan& plan) {
  if (source != LayerSource::kAuto) return source == LayerSource::kCheckpoint;
  for (const Stage& stage : plan.stages) {
    if (stage.host != plan.stages.front().host) return false;
  }
  return true;
}

DecoderLayerWeights layer_on_every_rank(const StageContext& context, int64_t layer, bool read_everywhere) {
  const int owner = context.plan.owner_of_layer(layer);
  if (read_everywhere) return load_decoder_layer(context.checkpoint, context.config, layer);
  DecoderLayerWeights weights;
  if (context.rank() == owner) weights = load_decoder_layer(context.checkpoint, context.config, layer);
  broadcast_layer(*context.transport, weights, context.config, layer, owner);
  return weights;
}

HeadWeights head_on_every_rank(const StageContext& context, bool read_everywhere) {
  if (read_everywhere) return load_head(context.checkpoint, context.config);
  HeadWeights head;
  const int root = context.world_size() - 1;
  if (context.rank() == root) head = load_head(context.checkpoint, context.config);
  broadcast_into(*context.transport, head.norm, root);
  broadcast_into(*context.transport, head.lm_head, root);
  return head;
}

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

}  // namespace pipeprune
