// Moving a decoder layer (or the head) from the rank that owns it to every rank, for the
// sample-parallel walk (--parallel samples): the owner reads it from the checkpoint, every
// rank gets the same bytes in the stored dtype on the CPU.
#pragma once

#include "core/model/layer_weights.h"
#include "dist/transport/transport.h"

namespace pipeprune {

// Collective. On `root`, `weights` is the loaded layer and is left as it is; elsewhere it is
// replaced by the root's tensors (norms, then each linear's weight and bias, as the config
// implies them).
void broadcast_layer(Transport& transport, DecoderLayerWeights& weights, const ModelConfig& config, int64_t layer,
                     int root);
void broadcast_head(Transport& transport, HeadWeights& head, int root);

}  // namespace pipeprune
