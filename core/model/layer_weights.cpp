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

std::vector<LinearKind> layer_linears(const ModelConfig& config) {
  if (config.fused_projections) return {LinearKind::kQ, LinearKind::kO, LinearKind::kGate, LinearKind::kDown};
  return {kAllLinears.begin(), kAllLinears.end()};
}

const char* linear_name(const ModelConfig& config, LinearKind kind) {
  if (config.fused_projections && kind == LinearKind::kQ) return "self_attn.qkv_proj";
  if (config.fused_projections && kind == LinearKind::kGate) return "mlp.gate_up_proj";
  return linear_name(kind);
}

const char* linear_short_name(const ModelConfig& config, LinearKind kind) {
  if (config.fused_projections && kind == LinearKind::kQ) return "qkv";
  if (config.fused_projections && kind == LinearKind::kGate) return "gate_up";
  return linear_short_name(kind);
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

const char* norm_name(NormKind kind) {
  switch (kind) {
    case NormKind::kInput: return "input_layernorm";
    case NormKind::kPostAttention: return "post_attention_layernorm";
    case NormKind::kPreFeedforward: return "pre_feedforward_layernorm";
    case NormKind::kPostFeedforward: return "post_feedforward_layernorm";
    case NormKind::kQ: return "self_attn.q_norm";
    case NormKind::kK: return "self_attn.k_norm";
  }
  return "?";
}

std::vector<NormKind> layer_norms(const ModelConfig& config) {
  std::vector<NormKind> out = {NormKind::kInput, NormKind::kPostAttention};
  if (config.sandwich_norms) {
    out.push_back(NormKind::kPreFeedforward);
    out.push_back(NormKind::kPostFeedforward);
  }
  if (config.qk_norm) {
    out.push_back(NormKind::kQ);
    out.push_back(NormKind::kK);
  }
  return out;
}

int64_t norm_size(const ModelConfig& config, NormKind kind) {
  return kind == NormKind::kQ || kind == NormKind::kK ? config.head_dim : config.hidden_size;
}

std::string layer_tensor_name(int64_t layer, const std::string& suffix) {
  return "model.layers." + std::to_string(layer) + "." + suffix;
}

std::array<int64_t, 2> linear_shape(const ModelConfig& config, LinearKind kind) {
  if (config.fused_projections && kind == LinearKind::kQ) return {config.q_size() + 2 * config.kv_size(), config.hidden_size};
  if (config.fused_projections && kind == LinearKind::kGate) return {2 * config.intermediate_size, config.hidden_size};
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
  for (NormKind kind : layer_norms(config)) {
    out.push_back({layer_tensor_name(layer, std::string(norm_name(kind)) + ".weight"), {norm_size(config, kind)}});
  }
  for (LinearKind kind : layer_linears(config)) {
    const auto shape = linear_shape(config, kind);
    const std::string base = std::string(linear_name(config, kind));
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

std::vector<std::pair<std::string, at::Tensor>> DecoderLayerWeights::named_tensors(const ModelConfig& config) const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (int i = 0; i < kNumNorms; ++i) {
    if (norms[i].defined()) {
      out.emplace_back(layer_tensor_name(layer, std::string(norm_name(static_cast<NormKind>(i))) + ".weight"), norms[i]);
    }
  }
  for (LinearKind kind : layer_linears(config)) {
    const Linear& linear = (*this)[kind];
    const std::string base = linear_name(config, kind);
    out.emplace_back(layer_tensor_name(layer, base + ".weight"), linear.weight);
    if (linear.bias.defined()) out.emplace_back(layer_tensor_name(layer, base + ".bias"), linear.bias);
  }
  return out;
}

int64_t DecoderLayerWeights::n_bytes() const {
  int64_t total = 0;
  for (const at::Tensor& norm : norms) total += tensor_bytes(norm);
  for (const Linear& linear : linears) total += tensor_bytes(linear.weight) + tensor_bytes(linear.bias);
  return total;
}

int64_t EmbeddingWeights::n_bytes() const { return tensor_bytes(embed_tokens); }

int64_t HeadWeights::n_bytes() const { return tensor_bytes(norm) + tensor_bytes(lm_head); }

DecoderLayerWeights to_compute(const DecoderLayerWeights& weights, c10::Device device,
                               c10::ScalarType dtype) {
  DecoderLayerWeights out;
  out.layer = weights.layer;
  for (size_t i = 0; i < weights.norms.size(); ++i) out.norms[i] = copy_to(weights.norms[i], device, dtype);
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
