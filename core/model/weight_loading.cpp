// load_decoder_layer / load_embedding / load_head (declared in layer_weights.h): reading one
// part of the model from a SafetensorsCheckpoint, each tensor checked against the config.
#include <ATen/ATen.h>

#include "core/common/error.h"
#include "core/io/safetensors.h"
#include "core/model/layer_weights.h"
#include "core/model/tensor_checks.h"

namespace pipeprune {
namespace {

at::Tensor load_checked(const SafetensorsCheckpoint& checkpoint, const ExpectedTensor& expected) {
  require_tensor(checkpoint, expected);
  return checkpoint.load(expected.name);
}

// "model.layers.3.self_attn.q_proj.weight" -> the linear it belongs to, by suffix.
bool assign_linear(DecoderLayerWeights& weights, const ModelConfig& config, const std::string& name,
                   const at::Tensor& tensor) {
  for (LinearKind kind : layer_linears(config)) {
    const std::string base = layer_tensor_name(weights.layer, linear_name(config, kind));
    if (name == base + ".weight") {
      weights[kind].weight = tensor;
      return true;
    }
    if (name == base + ".bias") {
      weights[kind].bias = tensor;
      return true;
    }
  }
  return false;
}

bool assign_norm(DecoderLayerWeights& weights, const std::string& name, const at::Tensor& tensor) {
  for (int i = 0; i < kNumNorms; ++i) {
    if (name == layer_tensor_name(weights.layer, std::string(norm_name(static_cast<NormKind>(i))) + ".weight")) {
      weights.norms[i] = tensor;
      return true;
    }
  }
  return false;
}

}  // namespace

DecoderLayerWeights load_decoder_layer(const SafetensorsCheckpoint& checkpoint,
                                       const ModelConfig& config, int64_t layer) {
  PIPEPRUNE_CHECK(layer >= 0 && layer < config.n_layers, Error,
                  "decoder layer " << layer << " does not exist (the model has " << config.n_layers << ")");
  DecoderLayerWeights weights;
  weights.layer = layer;
  for (const ExpectedTensor& expected : expected_layer_tensors(config, layer)) {
    at::Tensor tensor = load_checked(checkpoint, expected);
    const bool known =
        assign_norm(weights, expected.name, tensor) || assign_linear(weights, config, expected.name, tensor);
    PIPEPRUNE_CHECK(known, Error, "internal: no slot for tensor " << expected.name);
  }
  return weights;
}

std::string embedding_tensor_name(const SafetensorsCheckpoint& checkpoint, const ModelConfig& config) {
  if (config.tie_word_embeddings && !checkpoint.has(kEmbedTokensName) && checkpoint.has(kLmHeadName)) return kLmHeadName;
  return kEmbedTokensName;
}

EmbeddingWeights load_embedding(const SafetensorsCheckpoint& checkpoint, const ModelConfig& config) {
  ExpectedTensor expected = expected_embedding_tensor(config);
  expected.name = embedding_tensor_name(checkpoint, config);
  return {load_checked(checkpoint, expected)};
}

HeadWeights load_head(const SafetensorsCheckpoint& checkpoint, const ModelConfig& config) {
  HeadWeights head;
  head.norm = load_checked(checkpoint, {kFinalNormName, {config.hidden_size}});
  ExpectedTensor lm_head{kLmHeadName, {config.vocab_size, config.hidden_size}};
  if (config.tie_word_embeddings) lm_head.name = embedding_tensor_name(checkpoint, config);
  head.lm_head = load_checked(checkpoint, lm_head);
  return head;
}

}  // namespace pipeprune
