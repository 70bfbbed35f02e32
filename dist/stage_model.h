// The part of the model one rank holds for inference (eval, generate): its decoder layers and,
// on the last stage, the final norm and lm_head, all resident in the compute dtype on the
// compute device; the embedding on the first stage is the runner's.
//
// pipeline_forward() moves one batch of tokens through every stage as a sample-major walk of
// the stage runner (dist/stage_runner.h): the first rank embeds and sends, middle ranks
// receive, run and send, the last rank returns the logits. Every rank must call it with the
// same token shape, in the same order.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "core/model/decoder.h"
#include "core/model/layer_weights.h"
#include "dist/stage_runner.h"

namespace pipeprune {

class StageModel {
 public:
  StageModel(const StageContext& context, int64_t max_positions, FaultInjector& faults = no_faults());

  // Returns the logits [batch, tokens, vocab] on the last rank and an undefined tensor on the
  // others. tokens: [batch, tokens] int64 (read on the first rank only; others use the shape).
  // With caches (one per owned layer), positions start at the caches' length. Without caches a
  // layer that runs out of device memory is retried on the CPU for this call; with them it
  // cannot be (the cache lives on the device).
  at::Tensor pipeline_forward(const at::Tensor& tokens, int tag, std::vector<LayerKVCache>* caches = nullptr);
  // Empty caches, one per owned layer.
  std::vector<LayerKVCache> make_caches() const;
  const StageContext& context() const { return context_; }

 private:
  const StageContext& context_;
  StageRunner runner_;
  std::vector<DecoderLayerWeights> layers_;
  HeadWeights head_;
};

}  // namespace pipeprune
