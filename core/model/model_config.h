// The decoder hyper-parameters of a Hugging Face config.json (model_type llama, mistral, qwen2).
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
// max_position_embeddings (llama 2048, mistral 131072, qwen2 32768), rms_norm_eps 1e-6,
// rope_theta 10000, num_key_value_heads = num_attention_heads, head_dim = hidden/heads,
// tie_word_embeddings false, attention_bias/mlp_bias false, hidden_act "silu",
// torch_dtype float32.
//
// Biases follow transformers' modeling code: llama attention_bias puts biases on q,k,v and o,
// mlp_bias on gate/up/down; qwen2 always has q,k,v biases and never o/MLP biases; mistral has
// no biases (its modeling code ignores attention_bias). Mistral's sliding_window is applied in
// the attention mask; qwen2 with use_sliding_window true is rejected (no released checkpoint
// uses it, and its per-layer rule is not implemented).
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
  enum class Type { kNone, kLinear, kLlama3 };
  Type type = Type::kNone;
  double factor = 1.0;
  // llama3 only.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string model_type;  // "llama", "mistral" or "qwen2"
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
  // Mistral: a key more than sliding_window - 1 positions behind the query is masked.
  std::optional<int64_t> sliding_window;
  DType torch_dtype = DType::kF32;
  std::optional<int64_t> bos_token_id;
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
};

bool operator==(const RopeScaling& a, const RopeScaling& b);
bool operator==(const ModelConfig& a, const ModelConfig& b);
inline bool operator!=(const ModelConfig& a, const ModelConfig& b) { return !(a == b); }

}  // namespace pipeprune
