// Forward pass of a Llama/Mistral/Qwen2/Qwen3/Phi3/Gemma2/Gemma3 decoder, following Hugging
// Face's modeling code exactly: RMSNorm (x * rsqrt(mean(x^2) + eps) in fp32, times weight;
// gemma's (1 + weight) in fp32), rotary embeddings with rotate_half and rope scaling (phi3: on
// the first rotary_dim() dims, LongRoPE's short factors), causal attention with GQA
// (scores / sqrt(head_dim), or gemma's * query_pre_attn_scalar^-0.5 and soft-capping; softmax in
// fp32), per-head q/k norms (qwen3, gemma3), sliding-window layers (mistral, phi3: all; gemma:
// those of layer_types, gemma3 with its local RoPE base), gated MLP with SiLU or gelu-tanh,
// gemma's norms around both blocks, phi3's fused qkv and gate_up projections. Functions are free
// and stateless; tensors stay on the device and in the dtype of the weights they are given (the
// caller upcasts one layer at a time).
//
// Named taps: when `tap` is given, it is called with the input of every linear just before
// that linear runs (q, k and v share one input, as do gate and up; the tap is called once
// per linear, in LinearKind order). This is how pruners collect calibration statistics.
//
// Computation runs under c10::InferenceMode, so results (and cache tensors) are inference
// tensors: reading them is fine anywhere, but modifying one in place needs an InferenceMode
// guard in the caller too. Attention is computed a few KV heads at a time so that the score
// matrix of one chunk stays under kAttentionChunkBytes. Thread-safety: free functions, no state.
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
  // gemma3_text's sliding layers: default RoPE with local_rope_theta; undefined otherwise.
  at::Tensor local_cos;
  at::Tensor local_sin;
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

// HF LlamaRMSNorm: x in fp32 times rsqrt(mean(x^2) + eps), cast back to x's dtype, times weight.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
// The config's norm: the above, or gemma's x_normed * (1 + weight) computed in fp32.
at::Tensor rms_norm(const ModelConfig& config, const at::Tensor& x, const at::Tensor& weight);
// gemma: embeddings times sqrt(hidden_size) in embedded's dtype; others unchanged. Apply after
// casting the looked-up rows to the compute dtype.
at::Tensor scale_embeddings(const ModelConfig& config, const at::Tensor& embedded);

// Scores of at most this many bytes (fp32) are materialized per attention chunk.
constexpr int64_t kAttentionChunkBytes = 64LL << 20;
// Upper bound on the temporary bytes one decoder_layer_forward() call allocates besides its
// input, its output, the weights and the cache (for the memory planner and `estimate`).
int64_t decoder_layer_scratch_bytes(const ModelConfig& config, int64_t batch, int64_t tokens,
                                    int64_t n_keys, c10::ScalarType dtype);

// hidden: [batch, tokens, hidden_size]. Positions are position_offset .. position_offset+tokens-1
// (rope must cover them). Without a cache, the tokens attend causally among themselves. With a
// cache, cache->length must equal position_offset: the tokens attend to the cached positions
// too, and this call's keys and values (after RoPE, as HF caches them) are appended; the cache
// grows as needed and holds tensors of hidden's device and dtype. Mistral's sliding window
// masks keys with query_pos - key_pos >= sliding_window (transformers' current rule).
// Returns the layer output, same shape and dtype as hidden.
at::Tensor decoder_layer_forward(const DecoderLayerWeights& weights, const ModelConfig& config,
                                 const RopeTables& rope, const at::Tensor& hidden,
                                 int64_t position_offset = 0, LayerKVCache* cache = nullptr,
                                 const LinearTap* tap = nullptr);

// The linears' inputs only: the forward of decoder_layer_forward (no cache, positions from 0)
// run as far as the input of `last`, which goes to the tap like every input before it, and no
// further (a statistics pass needs the inputs of its group's linears, not the layer's output:
// without true-sequential groups that skips down_proj, a quarter of the layer's GEMM work).
// The tap sees exactly the tensors decoder_layer_forward's tap sees.
void decoder_layer_linear_inputs(const DecoderLayerWeights& weights, const ModelConfig& config,
                                 const RopeTables& rope, const at::Tensor& hidden, const LinearTap& tap,
                                 LinearKind last);

// tokens: [batch, tokens] int64 -> [batch, tokens, hidden_size] in the embedding's dtype.
at::Tensor embed_tokens(const EmbeddingWeights& weights, const at::Tensor& tokens);
// Final norm and lm_head: [batch, tokens, hidden] -> [batch, tokens, vocab].
at::Tensor head_forward(const HeadWeights& weights, const ModelConfig& config, const at::Tensor& hidden);

}  // namespace pipeprune
