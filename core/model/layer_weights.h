// Plain weight structs of the decoder (no nn::Module) and Hugging Face tensor names.
//
// A DecoderLayerWeights holds one layer's tensors; whoever loads it owns it. Tensors are in
// the stored dtype on the CPU after load_decoder_layer(), and in the compute dtype on the
// compute device after to_compute(). Plain values: no locking; share read-only across threads.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/model/model_config.h"

namespace pipeprune {

class SafetensorsCheckpoint;

// The seven linears of a decoder layer, in the order they run.
enum class LinearKind { kQ = 0, kK, kV, kO, kGate, kUp, kDown };
constexpr int kNumLinears = 7;
constexpr std::array<LinearKind, kNumLinears> kAllLinears = {
    LinearKind::kQ, LinearKind::kK, LinearKind::kV, LinearKind::kO,
    LinearKind::kGate, LinearKind::kUp, LinearKind::kDown};

// The linears this config's layers have, in the order they run: all seven, or for phi3's fused
// projections four, kQ holding qkv_proj ([q; k; v] rows) and kGate gate_up_proj ([gate; up]).
// Fused matrices are pruned as one matrix, as the published code prunes that nn.Linear.
std::vector<LinearKind> layer_linears(const ModelConfig& config);
// "self_attn.q_proj", ..., "mlp.down_proj" (the split names)
const char* linear_name(LinearKind kind);
// The name in this config's checkpoints: the above, or "self_attn.qkv_proj"/"mlp.gate_up_proj".
const char* linear_name(const ModelConfig& config, LinearKind kind);
// "q", "k", "v", "o", "gate", "up", "down"
const char* linear_short_name(LinearKind kind);
// The above, or "qkv"/"gate_up" for fused projections.
const char* linear_short_name(const ModelConfig& config, LinearKind kind);
// The RMSNorm weights of a decoder layer. Every family has the input and post-attention norms;
// gemma adds the pre/post-feed-forward norms (and its post-attention norm normalizes the
// attention output before the residual add), qwen3 and gemma3_text the per-head q/k norms.
enum class NormKind { kInput = 0, kPostAttention, kPreFeedforward, kPostFeedforward, kQ, kK };
constexpr int kNumNorms = 6;
// "input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
// "post_feedforward_layernorm", "self_attn.q_norm", "self_attn.k_norm"
const char* norm_name(NormKind kind);
// The norms this config's layers have, in the order they run.
std::vector<NormKind> layer_norms(const ModelConfig& config);
// hidden_size, or head_dim for the q/k norms.
int64_t norm_size(const ModelConfig& config, NormKind kind);

// "model.layers.{layer}.{suffix}"
std::string layer_tensor_name(int64_t layer, const std::string& suffix);
// [out_features, in_features] of a linear for this config (the fused shape for phi3's kQ/kGate).
std::array<int64_t, 2> linear_shape(const ModelConfig& config, LinearKind kind);
// The first linear of the layer reading the same input as `kind` (k and v read q's, up reads
// gate's), or `kind` itself: linears with one input owner share their pruning statistics.
LinearKind input_owner(LinearKind kind);
bool linear_has_bias(const ModelConfig& config, LinearKind kind);

inline constexpr const char* kEmbedTokensName = "model.embed_tokens.weight";
inline constexpr const char* kFinalNormName = "model.norm.weight";
inline constexpr const char* kLmHeadName = "lm_head.weight";

// A tensor the config implies, with its Hugging Face name and exact shape.
struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
};
// Every tensor of decoder layer `layer`: its norms, then each linear's weight (and bias).
std::vector<ExpectedTensor> expected_layer_tensors(const ModelConfig& config, int64_t layer);
// model.embed_tokens.weight.
ExpectedTensor expected_embedding_tensor(const ModelConfig& config);
// The name the embedding table is stored under in this checkpoint: model.embed_tokens.weight
// (directly or as a metadata alias), or, for tied embeddings stored only under the head's name
// (as safetensors.torch.save_model and some exporters leave them), lm_head.weight.
std::string embedding_tensor_name(const SafetensorsCheckpoint& checkpoint, const ModelConfig& config);
// model.norm.weight, then lm_head.weight unless the embeddings are tied.
std::vector<ExpectedTensor> expected_head_tensors(const ModelConfig& config);

struct Linear {
  at::Tensor weight;  // [out, in]
  at::Tensor bias;    // [out], undefined when the linear has none
};

struct DecoderLayerWeights {
  int64_t layer = -1;
  std::array<at::Tensor, kNumNorms> norms;  // [hidden] or [head_dim]; undefined when absent
  std::array<Linear, kNumLinears> linears;  // undefined weights for linears the layer lacks

  at::Tensor& norm(NormKind kind) { return norms[static_cast<int>(kind)]; }
  const at::Tensor& norm(NormKind kind) const { return norms[static_cast<int>(kind)]; }

  Linear& operator[](LinearKind kind) { return linears[static_cast<int>(kind)]; }
  const Linear& operator[](LinearKind kind) const { return linears[static_cast<int>(kind)]; }
  // Names and tensors of every tensor of the layer (Hugging Face names for `config`'s family),
  // for saving.
  std::vector<std::pair<std::string, at::Tensor>> named_tensors(const ModelConfig& config) const;
  int64_t n_bytes() const;
};

struct EmbeddingWeights {
  at::Tensor embed_tokens;  // [vocab, hidden]
  int64_t n_bytes() const;
};

struct HeadWeights {
  at::Tensor norm;     // [hidden]
  at::Tensor lm_head;  // [vocab, hidden]; the embedding when tie_word_embeddings
  int64_t n_bytes() const;
};

// Loads one decoder layer from the checkpoint, touching no other layer. Every tensor's presence
// and shape is checked against the config (the reader only yields F32/F16/BF16): FormatError
// naming the tensor, its shape and the expected shape ("... has shape [64, 32]; config.json
// implies [64, 64]"). Tensors the config does not use (e.g. rotary_emb.inv_freq) are ignored.
// With tied embeddings the head's lm_head is model.embed_tokens.weight (a lm_head.weight in the
// checkpoint is ignored, as transformers does).
DecoderLayerWeights load_decoder_layer(const SafetensorsCheckpoint& checkpoint,
                                       const ModelConfig& config, int64_t layer);
EmbeddingWeights load_embedding(const SafetensorsCheckpoint& checkpoint, const ModelConfig& config);
HeadWeights load_head(const SafetensorsCheckpoint& checkpoint, const ModelConfig& config);

// Copies every tensor to `device` as `dtype` (e.g. CPU fp32 for compute). Always a copy, never
// an alias of the input (even when device and dtype already match), so the result may be
// modified in place (pruned) without touching the loaded weights; drop the input to free it.
DecoderLayerWeights to_compute(const DecoderLayerWeights& weights, c10::Device device,
                               c10::ScalarType dtype);
EmbeddingWeights to_compute(const EmbeddingWeights& weights, c10::Device device, c10::ScalarType dtype);
HeadWeights to_compute(const HeadWeights& weights, c10::Device device, c10::ScalarType dtype);

}  // namespace pipeprune
