// Getting a decoder layer (or the head) onto every rank for the sample-parallel walk
// (--parallel samples): each rank reads it from the checkpoint, or its owner reads it and
// broadcasts it. Either way every rank holds the same bytes, in the stored dtype on the CPU.
#pragma once

#include <string>

#include "core/model/layer_weights.h"
#include "dist/stage_context.h"
#include "dist/transport/transport.h"

namespace pipeprune {

// --layer-source: auto reads on every rank when all ranks run on one host (one page cache holds
// the mmap'd checkpoint, so a read is a memory copy, cheaper than a broadcast through MPI), and
// broadcasts otherwise; owner always broadcasts from the owner; checkpoint always reads on
// every rank (a filesystem every node sees, e.g. a cluster's parallel filesystem).
enum class LayerSource { kAuto, kOwner, kCheckpoint };
// "auto" | "owner" | "checkpoint"; ConfigError naming --layer-source otherwise.
LayerSource parse_layer_source(const std::string& name);
// Whether, under `source`, every rank reads for itself (kAuto resolved from the plan's hosts).
bool every_rank_reads(LayerSource source, const StagePlan& plan);

// Collective. Decoder layer `layer`, read on `owner` (or on every rank when every_rank_reads).
DecoderLayerWeights layer_on_every_rank(const StageContext& context, int64_t layer, bool read_everywhere);
// The final norm and lm_head, from the last rank (their owner) or read on every rank.
HeadWeights head_on_every_rank(const StageContext& context, bool read_everywhere);

// Collective. On `root`, `weights` is the loaded layer and is left as it is; elsewhere it is
// replaced by the root's tensors (norms, then each linear's weight and bias, as the config
// implies them).
void broadcast_layer(Transport& transport, DecoderLayerWeights& weights, const ModelConfig& config, int64_t layer,
                     int root);

}  // namespace pipeprune
