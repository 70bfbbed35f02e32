#include "core/model/layer_weights.h"

#include <ATen/ATen.h>

#include <sstream>

#include "core/common/error.h"

namespace pipeprune {
namespace {

int64_t tensor_bytes(const at::Tensor& t) {
  return t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : 0;
}

at::Tensor copy_to(const at::Tensor& t, c10::Device device, c10::ScalarType dtype) {
  if (!t.defined()) return t;
  return t.to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
}

}  // namespace

LinearKind input_owner(LinearKind kind) {
  switch (kind) {
    case LinearKind::kK:
    case LinearKind::kV:
      return LinearKind::kQ;
    case LinearKind::kUp:
      return LinearKind::kGate;
    default:
      return kind;
  }
}

const char* linear_name(LinearKind kind) {
  switch (kind) {
    case LinearKind::kQ: return "self_attn.q_proj";
    case LinearKind::kK: return "self_attn.k_proj";
    case LinearKind::kV: return "self_attn.v_proj";
    case LinearKind::kO: return "self_attn.o_proj";
    case LinearKind::kGate: return "mlp.gate_proj";
    case LinearKind::kUp: return "mlp.up_proj";
    case LinearKind::kDown: return "mlp.down_proj";
  }
  return "?";
}

const char* linear_short_name(LinearKind kind) {
  switch (kind) {
    case LinearKind::kQ: return "q";
    case LinearKind::kK: return "k";
    case LinearKind::kV: return "v";
    case LinearKind::kO: return "o";
    case LinearKind::kGate: return "gate";
    case LinearKind::kUp: return "up";
    case LinearKind::kDown: return "down";
  }
  return "?";
}

std::string layer_tensor_name(int64_t layer, const std::string& suffix) {
  return "model.layers." + std::to_string(layer) + "." + suffix;
}

std::array<int64_t, 2> linear_shape(const ModelConfig& config, LinearKind kind) {
  switch (kind) {
    case LinearKind::kQ: return {config.q_size(), config.hidden_size};
    case LinearKind::kK:
    case LinearKind::kV: return {config.kv_size(), config.hidden_size};
    case LinearKind::kO: return {config.hidden_size, config.q_size()};
    case LinearKind::kGate:
    case LinearKind::kUp: return {config.intermediate_size, config.hidden_size};
    case LinearKind::kDown: return {config.hidden_size, config.intermediate_size};
  }
  return {0, 0};
}

bool linear_has_bias(const ModelConfig& config, LinearKind kind) {
  switch (kind) {
    case LinearKind::kQ:
    case LinearKind::kK:
    case LinearKind::kV: return config.qkv_bias;
    case LinearKind::kO: return config.o_bias;
    default: return config.mlp_bias;
  }
}

std::vector<ExpectedTensor> expected_layer_tensors(const ModelConfig& config, int64_t layer) {
  std::vector<ExpectedTensor> out;
  out.push_back({layer_tensor_name(layer, "input_layernorm.weight"), {config.hidden_size}});
  out.push_back({layer_tensor_name(layer, "post_attention_layernorm.weight"), {config.hidden_size}});
  for (LinearKind kind : kAllLinears) {
    const auto shape = linear_shape(config, kind);
    const std::string base = std::string(linear_name(kind));
    out.push_back({layer_tensor_name(layer, base + ".weight"), {shape[0], shape[1]}});
    if (linear_has_bias(config, kind)) {
      out.push_back({layer_tensor_name(layer, base + ".bias"), {shape[0]}});
    }
  }
  return out;
}

ExpectedTensor expected_embedding_tensor(const ModelConfig& config) {
  return {kEmbedTokensName, {config.vocab_size, config.hidden_size}};
}

std::vector<ExpectedTensor> expected_head_tensors(const ModelConfig& config) {
  std::vector<ExpectedTensor> out;
  out.push_back({kFinalNormName, {config.hidden_size}});
  if (!config.tie_word_embeddings) out.push_back({kLmHeadName, {config.vocab_size, config.hidden_size}});
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> DecoderLayerWeights::named_tensors() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  out.emplace_back(layer_tensor_name(layer, "input_layernorm.weight"), input_layernorm);
  out.emplace_back(layer_tensor_name(layer, "post_attention_layernorm.weight"), post_attention_layernorm);
  for (LinearKind kind : kAllLinears) {
    const Linear& linear = (*this)[kind];
    const std::string base = linear_name(kind);
    out.emplace_back(layer_tensor_name(layer, base + ".weight"), linear.weight);
    if (linear.bias.defined()) out.emplace_back(layer_tensor_name(layer, base + ".bias"), linear.bias);
  }
  return out;
}

int64_t DecoderLayerWeights::n_bytes() const {
  int64_t total = tensor_bytes(input_layernorm) + tensor_bytes(post_attention_layernorm);
  for (const Linear& linear : linears) total += tensor_bytes(linear.weight) + tensor_bytes(linear.bias);
  return total;
}

int64_t EmbeddingWeights::n_bytes() const { return tensor_bytes(embed_tokens); }

int64_t HeadWeights::n_bytes() const { return tensor_bytes(norm) + tensor_bytes(lm_head); }

DecoderLayerWeights to_compute(const DecoderLayerWeights& weights, c10::Device device,
                               c10::ScalarType dtype) {
  DecoderLayerWeights out;
  out.layer = weights.layer;
  out.input_layernorm = copy_to(weights.input_layernorm, device, dtype);
  out.post_attention_layernorm = copy_to(weights.post_attention_layernorm, device, dtype);
  for (size_t i = 0; i < weights.linears.size(); ++i) {
    out.linears[i].weight = copy_to(weights.linears[i].weight, device, dtype);
    out.linears[i].bias = copy_to(weights.linears[i].bias, device, dtype);
  }
  return out;
}

EmbeddingWeights to_compute(const EmbeddingWeights& weights, c10::Device device, c10::ScalarType dtype) {
  return {copy_to(weights.embed_tokens, device, dtype)};
}

HeadWeights to_compute(const HeadWeights& weights, c10::Device device, c10::ScalarType dtype) {
  return {copy_to(weights.norm, device, dtype), copy_to(weights.lm_head, device, dtype)};
}

}  // namespace pipeprune
