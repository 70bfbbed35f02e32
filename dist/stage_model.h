// The part of the model one rank holds for inference (eval, generate): the embedding on the
// first stage, its decoder layers, the final norm and lm_head on the last, all resident in the
// compute dtype on the compute device.
//
// pipeline_forward() moves one batch of tokens through every stage: the first rank embeds and
// sends, middle ranks receive, run and send, the last rank returns the logits. Every rank must
// call it with the same token shape, in the same order.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "core/model/decoder.h"
#include "core/model/layer_weights.h"
#include "dist/stage_context.h"

namespace pipeprune {

class StageModel {
 public:
  StageModel(const StageContext& context, int64_t max_positions);

  // Returns the logits [batch, tokens, vocab] on the last rank and an undefined tensor on the
  // others. tokens: [batch, tokens] int64 (read on the first rank only; others use the shape).
  // With caches (one per owned layer), positions start at the caches' length.
  at::Tensor pipeline_forward(const at::Tensor& tokens, int tag, std::vector<LayerKVCache>* caches = nullptr);
  // Empty caches, one per owned layer.
  std::vector<LayerKVCache> make_caches() const;
  const StageContext& context() const { return context_; }

 private:
  // One owned layer on the device; an out-of-memory failure (without a KV cache) is retried
  // on the CPU for this call.
  at::Tensor run_layer(size_t i, const at::Tensor& hidden, int64_t position_offset, LayerKVCache* cache);

  const StageContext& context_;
  RopeTables rope_;
  EmbeddingWeights embedding_;
  std::vector<DecoderLayerWeights> layers_;
  HeadWeights head_;
};

}  // namespace pipeprune
