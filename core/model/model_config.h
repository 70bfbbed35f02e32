// The decoder hyper-parameters of a Hugging Face config.json (model_type llama, mistral, qwen2,
// qwen3, phi3, gemma2, gemma3_text).
//
// Parsing is strict: an unknown model_type, a missing required field, a field of the wrong JSON
// type, a rope_scaling type other than "default"/"linear"/"llama3", or values that do not fit
// together (hidden_size not divisible into heads, n_heads not divisible by n_kv_heads) are
// ConfigErrors naming the file and the field.
//
// Required: model_type, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
// vocab_size (HF has defaults for these, but a checkpoint that relies on them is almost certainly
// a truncated config, and a wrong size would only surface as a confusing shape error later).
// Everything else takes the transformers default of its model_type when absent:
// max_position_embeddings (llama 2048, mistral 131072, qwen2/qwen3 32768, gemma2 8192,
// gemma3_text 131072), rms_norm_eps 1e-6, rope_theta 10000 (gemma3_text 1e6 for full-attention
// layers, 1e4 for sliding ones), num_key_value_heads = num_attention_heads, head_dim =
// hidden/heads (qwen3 128, gemma 256), tie_word_embeddings false (gemma true),
// attention_bias/mlp_bias false, hidden_act "silu" (gemma hidden_activation
// "gelu_pytorch_tanh"), torch_dtype float32; gemma query_pre_attn_scalar 256, sliding_window
// 4096, layer_types alternating (gemma2: sliding, full, ...; gemma3_text: five sliding, one full,
// or sliding_window_pattern), softcapping 50/30 (gemma2) or none (gemma3_text); phi3
// max_position_embeddings 4096, rms_norm_eps 1e-5, partial_rotary_factor 1, rope_scaling
// longrope ("su" and "yarn" are its old names) with original_max_position_embeddings.
//
// Biases follow transformers' modeling code: llama attention_bias puts biases on q,k,v and o,
// mlp_bias on gate/up/down; qwen2 always has q,k,v biases and never o/MLP biases; mistral has
// no biases (its modeling code ignores attention_bias). Mistral's sliding_window is applied in
// the attention mask; qwen2/qwen3 with use_sliding_window true is rejected (no released
// checkpoint uses it). qwen3 and gemma llama-style attention_bias puts biases on q,k,v and o.
// gemma3_text computes attn_logit_softcapping but its attention never applies it; so do we.
//
// Plain value type: copy freely, any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/common/dtype.h"

namespace pipeprune {

struct RopeScaling {
  enum class Type { kNone, kLinear, kLlama3, kLongRope };
  Type type = Type::kNone;
  double factor = 1.0;
  // llama3 only.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  // llama3 and longrope.
  int64_t original_max_position_embeddings = 8192;
  // longrope (phi3): inverse frequencies divided by short_factor (positions below
  // original_max_position_embeddings; the long factors beyond are not supported), cos and sin
  // times attention_factor.
  std::vector<double> short_factor;
  double attention_factor = 1.0;
};

enum class Activation { kSilu, kGeluTanh };  // SiLU, or gelu_pytorch_tanh (gemma)

struct ModelConfig {
  std::string model_type;  // "llama", "mistral", "qwen2", "qwen3", "phi3", "gemma2" or "gemma3_text"
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t n_layers = 0;    // num_hidden_layers
  int64_t n_heads = 0;     // num_attention_heads
  int64_t n_kv_heads = 0;  // num_key_value_heads (defaults to n_heads)
  int64_t head_dim = 0;    // head_dim when given, else hidden_size / n_heads
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // llama attention_bias; always true for qwen2
  bool o_bias = false;    // llama attention_bias; false for qwen2
  bool mlp_bias = false;  // llama mlp_bias
  // A key sliding_window or more positions behind the query is masked: in every layer
  // (mistral) or in the layers sliding_layers marks (gemma).
  std::optional<int64_t> sliding_window;
  std::vector<bool> sliding_layers;  // empty: all layers when sliding_window is set

  // Family structure, fixed by model_type:
  bool fused_projections = false;  // phi3: one qkv_proj and one gate_up_proj per layer
  double partial_rotary_factor = 1.0;  // phi3: RoPE on the first int(head_dim * factor) dims
  bool qk_norm = false;           // qwen3, gemma3_text: RMSNorm over head_dim of every q/k head before RoPE
  bool norm_plus_one = false;     // gemma: x_normed * (1 + w), all in fp32, then cast
  bool sandwich_norms = false;    // gemma: post-attention and pre/post-feed-forward norms around both blocks
  bool scale_embeddings = false;  // gemma: embeddings times sqrt(hidden_size), in the activations' dtype
  Activation activation = Activation::kSilu;
  std::optional<double> query_pre_attn_scalar;    // gemma: scores * scalar^-0.5, not / sqrt(head_dim)
  std::optional<double> attn_logit_softcapping;   // gemma2: scores = cap * tanh(scores / cap)
  std::optional<double> final_logit_softcapping;  // gemma: logits = cap * tanh(logits / cap)
  // gemma3_text: the sliding layers use default RoPE with this base; rope_theta/rope_scaling
  // apply to the full-attention layers.
  std::optional<double> local_rope_theta;
  DType torch_dtype = DType::kF32;
  std::optional<int64_t> bos_token_id;
  std::optional<int64_t> pad_token_id;
  std::vector<int64_t> eos_token_ids;  // eos_token_id may be an int or a list

  // `source` names the file in error messages.
  static ModelConfig from_json(const nlohmann::json& json, const std::string& source);
  // Reads PATH (a config.json, or a folder holding one).
  static ModelConfig from_file(const std::filesystem::path& config_json);
  // A config.json that from_json() reads back to the same values (used by `synth`).
  nlohmann::json to_json() const;

  int64_t q_size() const { return n_heads * head_dim; }
  int64_t kv_size() const { return n_kv_heads * head_dim; }
  int64_t n_kv_groups() const { return n_heads / n_kv_heads; }
  // The dims of a head that RoPE rotates: int(head_dim * partial_rotary_factor), as transformers.
  int64_t rotary_dim() const { return static_cast<int64_t>(static_cast<double>(head_dim) * partial_rotary_factor); }
  bool layer_is_sliding(int64_t layer) const;
  // The positions pipeprune runs: max_position_embeddings, or with LongRoPE the original context
  // (beyond it transformers switches to the long factors, which are not implemented).
  int64_t context_positions() const;
  // gemma3_text's sliding layers' RoPE: this config with rope_theta = local_rope_theta (which
  // must be set) and no scaling.
  ModelConfig local_rope_config() const;
};

// "llama, mistral, qwen2, qwen3, phi3, gemma2 and gemma3_text", for messages.
const char* supported_model_types_text();

bool operator==(const RopeScaling& a, const RopeScaling& b);
bool operator==(const ModelConfig& a, const ModelConfig& b);
inline bool operator!=(const ModelConfig& a, const ModelConfig& b) { return !(a == b); }

}  // namespace pipeprune
