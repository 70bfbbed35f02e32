// Forward pass of a Llama/Mistral/Qwen2 decoder, following Hugging Face's LlamaModel exactly:
// RMSNorm (x * rsqrt(mean(x^2) + eps) in fp32, times weight), rotary embeddings with
// rotate_half and rope scaling, causal attention with GQA (scores / sqrt(head_dim), softmax in
// fp32), SiLU-gated MLP. Functions are free and stateless; tensors stay on the device and in
// the dtype of the weights they are given (the caller upcasts one layer at a time).
//
// Named taps: when `tap` is given, it is called with the input of every linear just before
// that linear runs (q, k and v share one input, as do gate and up; the tap is called once
// per linear, in LinearKind order). This is how pruners collect calibration statistics.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "core/model/layer_weights.h"
#include "core/model/model_config.h"

namespace pipeprune {

// input: [batch, tokens, in_features], the exact tensor the linear multiplies.
using LinearTap = std::function<void(LinearKind kind, const at::Tensor& input)>;

// cos/sin tables [n_positions, head_dim] in fp32 (HF layout: the half-frequencies repeated
// twice), with rope_scaling applied to the inverse frequencies.
struct RopeTables {
  at::Tensor cos;
  at::Tensor sin;
  int64_t n_positions() const;
};
// The inverse frequencies [head_dim / 2] in fp32 after rope_scaling (linear or llama3).
at::Tensor rope_inverse_frequencies(const ModelConfig& config);
RopeTables make_rope_tables(const ModelConfig& config, int64_t n_positions, c10::Device device);

// Keys and values of one layer for incremental decoding: [batch, n_kv_heads, capacity, head_dim].
struct LayerKVCache {
  at::Tensor keys;
  at::Tensor values;
  int64_t length = 0;  // positions filled
};

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// hidden: [batch, tokens, hidden_size]. Positions are position_offset .. position_offset+tokens-1.
// With a cache, attends to the cached positions too and appends this call's keys and values
// (the cache grows as needed). Returns the layer output, same shape as hidden.
at::Tensor decoder_layer_forward(const DecoderLayerWeights& weights, const ModelConfig& config,
                                 const RopeTables& rope, const at::Tensor& hidden,
                                 int64_t position_offset = 0, LayerKVCache* cache = nullptr,
                                 const LinearTap* tap = nullptr);

// tokens: [batch, tokens] int64 -> [batch, tokens, hidden_size] in the embedding's dtype.
at::Tensor embed_tokens(const EmbeddingWeights& weights, const at::Tensor& tokens);
// Final norm and lm_head: [batch, tokens, hidden] -> [batch, tokens, vocab].
at::Tensor head_forward(const HeadWeights& weights, const ModelConfig& config, const at::Tensor& hidden);

}  // namespace pipeprune
