// Random tiny decoder models for the model tests: weights drawn from a seeded generator,
// scaled so activations stay O(1) through a few layers.
#pragma once

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/model/layer_weights.h"
#include "core/model/model_config.h"

namespace pipeprune::testing {

struct TinyModel {
  ModelConfig config;
  EmbeddingWeights embedding;
  std::vector<DecoderLayerWeights> layers;
  HeadWeights head;
};

inline ModelConfig tiny_config(const std::string& model_type, int64_t hidden, int64_t n_heads,
                               int64_t n_kv_heads, int64_t head_dim) {
  ModelConfig c;
  c.model_type = model_type;
  c.hidden_size = hidden;
  c.intermediate_size = hidden * 3 / 2 + 4;
  c.n_layers = 2;
  c.n_heads = n_heads;
  c.n_kv_heads = n_kv_heads;
  c.head_dim = head_dim;
  c.vocab_size = 40;
  c.max_position_embeddings = 128;
  c.rms_norm_eps = 1e-5;
  c.qkv_bias = model_type == "qwen2";
  return c;
}

// The variants the forward tests run, each exercising one feature of the config.
inline std::vector<std::pair<std::string, ModelConfig>> tiny_config_variants() {
  std::vector<std::pair<std::string, ModelConfig>> out;
  out.emplace_back("llama_gqa_untied", tiny_config("llama", 32, 4, 2, 8));

  ModelConfig qwen = tiny_config("qwen2", 32, 4, 1, 8);
  qwen.tie_word_embeddings = true;
  qwen.rope_theta = 1e6;
  out.emplace_back("qwen2_qkv_bias_tied", qwen);

  ModelConfig biased = tiny_config("llama", 32, 4, 4, 16);  // head_dim 16 != 32 / 4
  biased.qkv_bias = biased.o_bias = biased.mlp_bias = true;
  biased.rope_scaling.type = RopeScaling::Type::kLinear;
  biased.rope_scaling.factor = 2.0;
  out.emplace_back("llama_biases_linear_rope_head_dim", biased);

  ModelConfig llama3 = tiny_config("llama", 64, 8, 2, 16);  // q_size 128 != hidden 64
  llama3.rope_scaling.type = RopeScaling::Type::kLlama3;
  llama3.rope_scaling.factor = 8.0;
  llama3.rope_scaling.low_freq_factor = 1.0;
  llama3.rope_scaling.high_freq_factor = 4.0;
  // With head_dim 16 and theta 1e4 the wavelengths are 6.3, 19.9, 62.8, 199, ...: one band
  // kept, two smoothed (16 < wavelength < 64), the rest divided by the factor.
  llama3.rope_scaling.original_max_position_embeddings = 64;
  out.emplace_back("llama3_rope_gqa_head_dim", llama3);

  ModelConfig mistral = tiny_config("mistral", 32, 4, 2, 8);
  mistral.sliding_window = 3;
  out.emplace_back("mistral_sliding_window", mistral);

  // The other families come from config.json fields, as users give them.
  auto family = [](const char* extra) {
    nlohmann::json j = nlohmann::json::parse(extra);
    const nlohmann::json defaults = {{"hidden_size", 32}, {"intermediate_size", 52}, {"num_hidden_layers", 2},
                                     {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"head_dim", 16},
                                     {"vocab_size", 40}, {"max_position_embeddings", 128}, {"rms_norm_eps", 1e-5}};
    for (const auto& [key, value] : defaults.items()) {
      if (!j.contains(key)) j[key] = value;
    }
    return ModelConfig::from_json(j, "tiny");
  };
  out.emplace_back("qwen3_qk_norm", family(R"({"model_type": "qwen3", "rope_theta": 1000000.0})"));
  // Small caps so that tanh bends the scores and logits; query_pre_attn_scalar != head_dim;
  // layer 0 slides (window 3), layer 1 attends to everything.
  out.emplace_back("gemma2_softcap_sliding",
                   family(R"({"model_type": "gemma2", "query_pre_attn_scalar": 24, "sliding_window": 3,
                              "attn_logit_softcapping": 2.0, "final_logit_softcapping": 3.0})"));
  // Three layers, sliding, sliding, full; the full layer uses linear-scaled RoPE with base 1e6,
  // the sliding ones default RoPE with base 100.
  out.emplace_back("gemma3_local_rope_qk_norm",
                   family(R"({"model_type": "gemma3_text", "num_hidden_layers": 3, "sliding_window": 3,
                              "sliding_window_pattern": 3, "query_pre_attn_scalar": 16,
                              "rope_theta": 1000000.0, "rope_scaling": {"rope_type": "linear", "factor": 4.0},
                              "rope_local_base_freq": 100.0, "final_logit_softcapping": 3.0})"));
  // phi3: fused qkv_proj and gate_up_proj, half the head rotated, LongRoPE short factors with
  // the attention factor of max_position_embeddings 512 over an original 128.
  out.emplace_back("phi3_fused_partial_longrope",
                   family(R"({"model_type": "phi3", "partial_rotary_factor": 0.5, "max_position_embeddings": 512,
                              "original_max_position_embeddings": 128,
                              "rope_scaling": {"type": "longrope", "short_factor": [1.0, 1.5, 3.0, 7.0],
                                               "long_factor": [2.0, 4.0, 8.0, 16.0]}})"));
  return out;
}

inline at::Tensor random_tensor(at::Generator& gen, at::IntArrayRef shape, double scale, double shift = 0.0) {
  return at::randn(shape, gen, at::TensorOptions().dtype(at::kFloat)) * scale + shift;
}

inline TinyModel make_tiny_model(const ModelConfig& config, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  TinyModel model;
  model.config = config;
  model.embedding.embed_tokens = random_tensor(gen, {config.vocab_size, config.hidden_size}, 1.0);
  for (int64_t l = 0; l < config.n_layers; ++l) {
    DecoderLayerWeights w;
    w.layer = l;
    // gemma scales by (1 + w): its weights sit around 0, the others' around 1.
    const double shift = config.norm_plus_one ? 0.0 : 1.0;
    for (NormKind kind : layer_norms(config)) w.norm(kind) = random_tensor(gen, {norm_size(config, kind)}, 0.1, shift);
    for (LinearKind kind : layer_linears(config)) {
      const auto shape = linear_shape(config, kind);
      w[kind].weight = random_tensor(gen, {shape[0], shape[1]}, 1.0 / std::sqrt(double(shape[1])));
      if (linear_has_bias(config, kind)) w[kind].bias = random_tensor(gen, {shape[0]}, 0.1);
    }
    model.layers.push_back(std::move(w));
  }
  model.head.norm = random_tensor(gen, {config.hidden_size}, 0.1, config.norm_plus_one ? 0.0 : 1.0);
  model.head.lm_head = config.tie_word_embeddings
                           ? model.embedding.embed_tokens
                           : random_tensor(gen, {config.vocab_size, config.hidden_size}, 0.2);
  return model;
}

inline at::Tensor random_tokens(uint64_t seed, int64_t batch, int64_t tokens, int64_t vocab) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return at::randint(vocab, {batch, tokens}, gen, at::TensorOptions().dtype(at::kLong));
}

// max |actual - expected| / max |expected|, both converted to double.
inline double max_relative_error(const at::Tensor& actual, const at::Tensor& expected) {
  const at::Tensor a = actual.to(at::kDouble), e = expected.to(at::kDouble);
  const double scale = std::max(e.abs().max().item<double>(), 1e-30);
  return (a - e).abs().max().item<double>() / scale;
}

}  // namespace pipeprune::testing
