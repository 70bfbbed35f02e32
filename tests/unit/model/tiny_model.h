// Random tiny decoder models for the model tests: weights drawn from a seeded generator,
// scaled so activations stay O(1) through a few layers.
#pragma once

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

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
    w.input_layernorm = random_tensor(gen, {config.hidden_size}, 0.1, 1.0);
    w.post_attention_layernorm = random_tensor(gen, {config.hidden_size}, 0.1, 1.0);
    for (LinearKind kind : kAllLinears) {
      const auto shape = linear_shape(config, kind);
      w[kind].weight = random_tensor(gen, {shape[0], shape[1]}, 1.0 / std::sqrt(double(shape[1])));
      if (linear_has_bias(config, kind)) w[kind].bias = random_tensor(gen, {shape[0]}, 0.1);
    }
    model.layers.push_back(std::move(w));
  }
  model.head.norm = random_tensor(gen, {config.hidden_size}, 0.1, 1.0);
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
