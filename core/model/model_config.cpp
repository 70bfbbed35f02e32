#include "core/model/model_config.h"

#include <algorithm>
#include <cmath>

#include "core/common/error.h"
#include "core/common/files.h"
#include "core/common/log.h"

namespace pipeprune {
namespace {

using nlohmann::json;

// Reads typed fields of one JSON object; every error names the file and the dotted field path.
class FieldReader {
 public:
  FieldReader(const json& object, std::string source, std::string prefix = "")
      : object_(object), source_(std::move(source)), prefix_(std::move(prefix)) {}

  // Present and not null.
  bool has(const char* key) const { return object_.contains(key) && !object_.at(key).is_null(); }
  std::string path(const char* key) const { return prefix_ + key; }

  const json& required(const char* key) const {
    PIPEPRUNE_CHECK(has(key), ConfigError,
                    source_ << ": missing field '" << path(key)
                            << "'; a " << supported_model_types_text() << " config.json states it, add it");
    return object_.at(key);
  }
  int64_t required_int(const char* key) const { return as_int(key, required(key)); }
  double required_number(const char* key) const { return as_number(key, required(key)); }

  int64_t int_or(const char* key, int64_t fallback) const {
    return has(key) ? as_int(key, object_.at(key)) : fallback;
  }
  std::optional<int64_t> optional_int(const char* key) const {
    if (!has(key)) return std::nullopt;
    return as_int(key, object_.at(key));
  }
  double number_or(const char* key, double fallback) const {
    return has(key) ? as_number(key, object_.at(key)) : fallback;
  }
  bool bool_or(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& value = object_.at(key);
    PIPEPRUNE_CHECK(value.is_boolean(), ConfigError,
                    source_ << ": field '" << path(key) << "' must be true or false, got "
                            << value.dump());
    return value.get<bool>();
  }
  std::optional<std::string> optional_string(const char* key) const {
    if (!has(key)) return std::nullopt;
    const json& value = object_.at(key);
    PIPEPRUNE_CHECK(value.is_string(), ConfigError,
                    source_ << ": field '" << path(key) << "' must be a string, got " << value.dump());
    return value.get<std::string>();
  }
  std::vector<int64_t> int_or_int_list(const char* key) const {
    if (!has(key)) return {};
    const json& value = object_.at(key);
    if (!value.is_array()) return {as_int(key, value)};
    std::vector<int64_t> out;
    for (const json& item : value) out.push_back(as_int(key, item));
    return out;
  }

  int64_t as_int(const char* key, const json& value) const {
    PIPEPRUNE_CHECK(value.is_number_integer(), ConfigError,
                    source_ << ": field '" << path(key) << "' must be an integer, got "
                            << value.dump());
    return value.get<int64_t>();
  }
  double as_number(const char* key, const json& value) const {
    PIPEPRUNE_CHECK(value.is_number(), ConfigError,
                    source_ << ": field '" << path(key) << "' must be a number, got " << value.dump());
    return value.get<double>();
  }

 private:
  const json& object_;
  std::string source_;
  std::string prefix_;
};

// transformers' max_position_embeddings default per model_type.
int64_t default_max_positions(const std::string& model_type) {
  if (model_type == "mistral" || model_type == "gemma3_text") return 4096 * 32;
  if (model_type == "qwen2" || model_type == "qwen3") return 32768;
  if (model_type == "gemma2") return 8192;
  if (model_type == "phi3") return 4096;
  return 2048;
}

bool is_gemma(const std::string& model_type) { return model_type == "gemma2" || model_type == "gemma3_text"; }

// transformers' head_dim default per model_type when config.json leaves it out (0: hidden/heads).
int64_t default_head_dim(const std::string& model_type) {
  if (model_type == "qwen3") return 128;
  if (is_gemma(model_type)) return 256;
  return 0;
}

// rope_scaling (transformers <= 4.x) or rope_parameters (5.x): null/absent, or an object.
// `longrope`: whether this model_type may use LongRoPE (phi3 only).
RopeScaling parse_rope_scaling(const json& value, const std::string& source, const char* field, bool longrope = false) {
  RopeScaling rope;
  if (value.is_null()) return rope;
  PIPEPRUNE_CHECK(value.is_object(), ConfigError,
                  source << ": field '" << field << "' must be null or an object, got " << value.dump());
  const FieldReader reader(value, source, std::string(field) + ".");
  std::optional<std::string> type = reader.optional_string("rope_type");
  if (!type) type = reader.optional_string("type");
  PIPEPRUNE_CHECK(type.has_value(), ConfigError,
                  source << ": missing field '" << field << ".rope_type'; set it to \"default\", "
                         << "\"linear\" or \"llama3\"");
  if (*type == "default") return rope;
  if (longrope && (*type == "longrope" || *type == "su" || (*type == "yarn" && value.contains("short_factor")))) {
    // Phi-3's LongRoPE ("su" and, in some Phi-3 configs, "yarn" are its older names).
    rope.type = RopeScaling::Type::kLongRope;
    PIPEPRUNE_CHECK(value.contains("short_factor") && value.at("short_factor").is_array(), ConfigError,
                    source << ": field '" << field << ".short_factor' must be a list of numbers");
    for (const json& f : value.at("short_factor")) {
      PIPEPRUNE_CHECK(f.is_number() && f.get<double>() > 0, ConfigError,
                      source << ": field '" << field << ".short_factor' must hold positive numbers, got " << f.dump());
      rope.short_factor.push_back(f.get<double>());
    }
    rope.factor = reader.number_or("factor", 0.0);  // 0: from max_position_embeddings (ModelConfig)
    rope.attention_factor = reader.number_or("attention_factor", 0.0);
    rope.original_max_position_embeddings = reader.int_or("original_max_position_embeddings", 0);
    return rope;
  }
  if (*type == "linear") {
    rope.type = RopeScaling::Type::kLinear;
    rope.factor = reader.required_number("factor");
  } else if (*type == "llama3") {
    rope.type = RopeScaling::Type::kLlama3;
    rope.factor = reader.required_number("factor");
    rope.low_freq_factor = reader.required_number("low_freq_factor");
    rope.high_freq_factor = reader.required_number("high_freq_factor");
    rope.original_max_position_embeddings = reader.required_int("original_max_position_embeddings");
    PIPEPRUNE_CHECK(rope.high_freq_factor != rope.low_freq_factor, ConfigError,
                    source << ": field '" << field << ".high_freq_factor' must differ from "
                           << "low_freq_factor (both " << rope.low_freq_factor << ")");
    PIPEPRUNE_CHECK(rope.original_max_position_embeddings > 0, ConfigError,
                    source << ": field '" << field
                           << ".original_max_position_embeddings' must be positive");
  } else {
    PIPEPRUNE_FAIL(ConfigError, source << ": field '" << field << ".rope_type' is \"" << *type
                                       << "\"; pipeprune supports \"default\", \"linear\" and "
                                       << "\"llama3\" rope scaling (and \"longrope\" for phi3 only)");
  }
  PIPEPRUNE_CHECK(rope.factor > 0, ConfigError,
                  source << ": field '" << field << ".factor' must be positive, got " << rope.factor);
  return rope;
}

void check_positive(int64_t value, const char* field, const std::string& source) {
  PIPEPRUNE_CHECK(value > 0, ConfigError,
                  source << ": field '" << field << "' must be positive, got " << value);
}

void read_architecture(ModelConfig& c, const FieldReader& reader, const std::string& source) {
  const json& type = reader.required("model_type");
  PIPEPRUNE_CHECK(type.is_string(), ConfigError,
                  source << ": field 'model_type' must be a string, got " << type.dump());
  c.model_type = type.get<std::string>();
  const std::string& t = c.model_type;
  const bool known = t == "llama" || t == "mistral" || t == "qwen2" || t == "qwen3" || t == "phi3" || is_gemma(t);
  const char* hint = t == "gemma3" ? " (a gemma3 checkpoint with a vision tower; prune its text model, model_type "
                                     "gemma3_text)"
                                   : "";
  PIPEPRUNE_CHECK(known, ConfigError,
                  source << ": field 'model_type' is \"" << t << "\"" << hint << "; pipeprune supports "
                         << supported_model_types_text() << " dense decoders");
  if (is_gemma(t)) {
    // Gemma configs name it hidden_activation; older ones also carry hidden_act.
    const char* field = reader.has("hidden_activation") ? "hidden_activation" : "hidden_act";
    const std::string act = reader.optional_string(field).value_or("gelu_pytorch_tanh");
    PIPEPRUNE_CHECK(act == "gelu_pytorch_tanh", ConfigError,
                    source << ": field '" << field << "' is \"" << act << "\"; " << t
                           << " decoders use \"gelu_pytorch_tanh\"");
    c.activation = Activation::kGeluTanh;
    c.norm_plus_one = c.sandwich_norms = c.scale_embeddings = true;
    c.qk_norm = t == "gemma3_text";
    return;
  }
  const std::string act = reader.optional_string("hidden_act").value_or("silu");
  PIPEPRUNE_CHECK(act == "silu", ConfigError,
                  source << ": field 'hidden_act' is \"" << act << "\"; " << t << " decoders use \"silu\"");
  c.qk_norm = t == "qwen3";
  c.fused_projections = t == "phi3";
}

void read_sizes(ModelConfig& c, const FieldReader& reader, const std::string& source) {
  c.hidden_size = reader.required_int("hidden_size");
  c.intermediate_size = reader.required_int("intermediate_size");
  c.n_layers = reader.required_int("num_hidden_layers");
  c.n_heads = reader.required_int("num_attention_heads");
  c.vocab_size = reader.required_int("vocab_size");
  c.n_kv_heads = reader.int_or("num_key_value_heads", c.n_heads);
  c.max_position_embeddings =
      reader.int_or("max_position_embeddings", default_max_positions(c.model_type));
  check_positive(c.hidden_size, "hidden_size", source);
  check_positive(c.intermediate_size, "intermediate_size", source);
  check_positive(c.n_layers, "num_hidden_layers", source);
  check_positive(c.n_heads, "num_attention_heads", source);
  check_positive(c.n_kv_heads, "num_key_value_heads", source);
  check_positive(c.vocab_size, "vocab_size", source);
  check_positive(c.max_position_embeddings, "max_position_embeddings", source);
  if (reader.has("head_dim") || default_head_dim(c.model_type) != 0) {
    c.head_dim = reader.int_or("head_dim", default_head_dim(c.model_type));
    check_positive(c.head_dim, "head_dim", source);
  } else {
    PIPEPRUNE_CHECK(c.hidden_size % c.n_heads == 0, ConfigError,
                    source << ": field 'hidden_size' (" << c.hidden_size
                           << ") is not divisible by num_attention_heads (" << c.n_heads
                           << "); set head_dim or fix the sizes");
    c.head_dim = c.hidden_size / c.n_heads;
  }
  PIPEPRUNE_CHECK(c.n_heads % c.n_kv_heads == 0, ConfigError,
                  source << ": field 'num_attention_heads' (" << c.n_heads
                         << ") is not divisible by num_key_value_heads (" << c.n_kv_heads << ")");
  PIPEPRUNE_CHECK(c.head_dim % 2 == 0, ConfigError,
                  source << ": field 'head_dim' (" << c.head_dim
                         << ") must be even for rotary embeddings");
}

// transformers 5's rope_parameters with one entry per layer type (gemma3_text).
bool rope_per_layer_type(const nlohmann::json& json) {
  if (!json.contains("rope_parameters") || !json.at("rope_parameters").is_object()) return false;
  const nlohmann::json& params = json.at("rope_parameters");
  return params.contains("full_attention") || params.contains("sliding_attention");
}

void read_attention(ModelConfig& c, const FieldReader& reader, const nlohmann::json& json,
                    const std::string& source) {
  c.rms_norm_eps = reader.number_or("rms_norm_eps", 1e-6);
  PIPEPRUNE_CHECK(c.rms_norm_eps > 0, ConfigError,
                  source << ": field 'rms_norm_eps' must be positive, got " << c.rms_norm_eps);
  const bool per_layer_type = rope_per_layer_type(json);
  PIPEPRUNE_CHECK(!per_layer_type || c.model_type == "gemma3_text", ConfigError,
                  source << ": field 'rope_parameters' has one entry per layer type, which only gemma3_text "
                         << "uses; give " << c.model_type << " one rope_parameters object");
  if (per_layer_type) {
    // read_gemma3_rope() reads them.
  } else if (json.contains("rope_scaling") || !json.contains("rope_parameters")) {
    c.rope_theta = reader.number_or("rope_theta", 10000.0);
    if (json.contains("rope_scaling")) {
      c.rope_scaling = parse_rope_scaling(json.at("rope_scaling"), source, "rope_scaling", c.model_type == "phi3");
    }
  } else {
    // transformers 5 moved rope_theta and the scaling into one rope_parameters object.
    const nlohmann::json& params = json.at("rope_parameters");
    c.rope_scaling = parse_rope_scaling(params, source, "rope_parameters", c.model_type == "phi3");
    c.rope_theta = params.is_object()
                       ? FieldReader(params, source, "rope_parameters.").number_or("rope_theta", 10000.0)
                       : 10000.0;
  }
  PIPEPRUNE_CHECK(c.rope_theta > 0, ConfigError,
                  source << ": field 'rope_theta' must be positive, got " << c.rope_theta);

  if (c.model_type == "qwen2" || c.model_type == "qwen3") {
    c.qkv_bias = c.model_type == "qwen2" || reader.bool_or("attention_bias", false);
    c.o_bias = c.model_type == "qwen3" && c.qkv_bias;
    PIPEPRUNE_CHECK(!reader.bool_or("use_sliding_window", false), ConfigError,
                    source << ": field 'use_sliding_window' is true; pipeprune supports " << c.model_type
                           << " with full attention only (set it to false)");
  } else if (is_gemma(c.model_type)) {
    c.qkv_bias = c.o_bias = reader.bool_or("attention_bias", false);
  } else if (c.model_type == "llama") {
    c.qkv_bias = c.o_bias = reader.bool_or("attention_bias", false);
    c.mlp_bias = reader.bool_or("mlp_bias", false);
  } else {  // mistral and phi3: the window applies to every layer
    c.sliding_window = reader.optional_int("sliding_window");
    if (c.sliding_window) check_positive(*c.sliding_window, "sliding_window", source);
  }
}

// partial_rotary_factor and LongRoPE's derived factors, as transformers' Phi3Config and
// _compute_longrope_parameters (read_attention() read the sliding window).
void read_phi3(ModelConfig& c, const FieldReader& reader, const nlohmann::json& json, const std::string& source) {
  const nlohmann::json* params = json.contains("rope_parameters") && json.at("rope_parameters").is_object()
                                     ? &json.at("rope_parameters")
                                     : nullptr;
  c.partial_rotary_factor = reader.number_or("partial_rotary_factor", 1.0);
  if (params != nullptr && params->contains("partial_rotary_factor")) {
    c.partial_rotary_factor = FieldReader(*params, source, "rope_parameters.").required_number("partial_rotary_factor");
  }
  PIPEPRUNE_CHECK(c.partial_rotary_factor > 0 && c.partial_rotary_factor <= 1 && c.rotary_dim() % 2 == 0, ConfigError,
                  source << ": field 'partial_rotary_factor' (" << c.partial_rotary_factor
                         << ") must be in (0, 1] and leave an even number of rotary dims of head_dim " << c.head_dim);
  PIPEPRUNE_CHECK(!reader.bool_or("attention_bias", false), ConfigError,
                  source << ": field 'attention_bias' is true; phi3 has no biases");
  RopeScaling& rope = c.rope_scaling;
  if (rope.type != RopeScaling::Type::kLongRope) return;
  if (rope.original_max_position_embeddings == 0) {
    rope.original_max_position_embeddings = reader.int_or("original_max_position_embeddings", 4096);
  }
  check_positive(rope.original_max_position_embeddings, "original_max_position_embeddings", source);
  PIPEPRUNE_CHECK(static_cast<int64_t>(rope.short_factor.size()) == c.rotary_dim() / 2, ConfigError,
                  source << ": field 'rope_scaling.short_factor' has " << rope.short_factor.size()
                         << " entries; LongRoPE needs one per rotary frequency (" << c.rotary_dim() / 2 << ")");
  if (rope.factor == 0) {
    rope.factor = static_cast<double>(c.max_position_embeddings) / static_cast<double>(rope.original_max_position_embeddings);
  }
  if (rope.attention_factor == 0) {
    rope.attention_factor =
        rope.factor <= 1 ? 1.0
                         : std::sqrt(1 + std::log(rope.factor) / std::log(static_cast<double>(rope.original_max_position_embeddings)));
  }
}

// sliding_window (null: none) and which layers use it: layer_types, or gemma2's alternation and
// gemma3_text's sliding_window_pattern as transformers derives them.
void read_gemma_layer_types(ModelConfig& c, const FieldReader& reader, const nlohmann::json& json,
                            const std::string& source) {
  c.sliding_window = json.contains("sliding_window") && json.at("sliding_window").is_null()
                         ? std::nullopt
                         : std::optional<int64_t>(reader.int_or("sliding_window", 4096));
  if (c.sliding_window) check_positive(*c.sliding_window, "sliding_window", source);
  if (reader.has("layer_types")) {
    const nlohmann::json& types = json.at("layer_types");
    PIPEPRUNE_CHECK(types.is_array() && static_cast<int64_t>(types.size()) == c.n_layers, ConfigError,
                    source << ": field 'layer_types' must list one type per layer (" << c.n_layers << ")");
    for (const nlohmann::json& type : types) {
      const bool sliding = type == "sliding_attention";
      PIPEPRUNE_CHECK(sliding || type == "full_attention", ConfigError,
                      source << ": field 'layer_types' holds " << type.dump()
                             << "; expected \"sliding_attention\" or \"full_attention\"");
      c.sliding_layers.push_back(sliding);
    }
  } else {
    const int64_t pattern = c.model_type == "gemma2" ? 2 : reader.int_or("sliding_window_pattern", 6);
    check_positive(pattern, "sliding_window_pattern", source);
    for (int64_t i = 0; i < c.n_layers; ++i) c.sliding_layers.push_back((i + 1) % pattern != 0);
  }
  if (!c.sliding_window) c.sliding_layers.assign(c.n_layers, false);
}

// gemma3_text: transformers 5 nests one rope_parameters object per layer type; older configs
// give rope_theta, rope_scaling (full layers) and rope_local_base_freq (sliding layers).
void read_gemma3_rope(ModelConfig& c, const FieldReader& reader, const nlohmann::json& json, const std::string& source) {
  const nlohmann::json* params = json.contains("rope_parameters") ? &json.at("rope_parameters") : nullptr;
  if (rope_per_layer_type(json)) {
    c.rope_scaling = {};
    c.rope_theta = 1e6;
    c.local_rope_theta = 1e4;
    if (params->contains("full_attention")) {
      const nlohmann::json& full = params->at("full_attention");
      c.rope_scaling = parse_rope_scaling(full, source, "rope_parameters.full_attention");
      if (full.is_object()) {
        c.rope_theta = FieldReader(full, source, "rope_parameters.full_attention.").number_or("rope_theta", 1e6);
      }
    }
    if (params->contains("sliding_attention")) {
      const nlohmann::json& local = params->at("sliding_attention");
      PIPEPRUNE_CHECK(parse_rope_scaling(local, source, "rope_parameters.sliding_attention") == RopeScaling{},
                      ConfigError,
                      source << ": field 'rope_parameters.sliding_attention' scales RoPE; gemma3_text's sliding "
                             << "layers use default RoPE");
      if (local.is_object()) {
        c.local_rope_theta =
            FieldReader(local, source, "rope_parameters.sliding_attention.").number_or("rope_theta", 1e4);
      }
    }
  } else {
    if (!reader.has("rope_theta") && params == nullptr) c.rope_theta = 1e6;
    c.local_rope_theta = reader.number_or("rope_local_base_freq", 1e4);
  }
  PIPEPRUNE_CHECK(c.rope_theta > 0 && *c.local_rope_theta > 0, ConfigError,
                  source << ": the RoPE bases (rope_theta, rope_local_base_freq) must be positive");
}

// query_pre_attn_scalar and soft-capping, then the sliding layers and gemma3_text's two RoPE bases.
void read_gemma(ModelConfig& c, const FieldReader& reader, const nlohmann::json& json, const std::string& source) {
  const bool gemma2 = c.model_type == "gemma2";
  c.query_pre_attn_scalar = reader.number_or("query_pre_attn_scalar", 256);
  PIPEPRUNE_CHECK(*c.query_pre_attn_scalar > 0, ConfigError,
                  source << ": field 'query_pre_attn_scalar' must be positive");
  auto cap = [&](const char* key, std::optional<double> fallback) -> std::optional<double> {
    if (json.contains(key) && json.at(key).is_null()) return std::nullopt;
    if (!reader.has(key)) return fallback;
    const double value = reader.required_number(key);
    PIPEPRUNE_CHECK(value > 0, ConfigError, source << ": field '" << key << "' must be positive or null");
    return value;
  };
  c.final_logit_softcapping = cap("final_logit_softcapping", gemma2 ? std::optional<double>(30.0) : std::nullopt);
  // gemma3_text reads attn_logit_softcapping but never passes it to its attention.
  const std::optional<double> attn_cap = cap("attn_logit_softcapping", gemma2 ? std::optional<double>(50.0) : std::nullopt);
  if (gemma2) c.attn_logit_softcapping = attn_cap;

  read_gemma_layer_types(c, reader, json, source);
  if (!gemma2) read_gemma3_rope(c, reader, json, source);
}

void read_tokens_and_dtype(ModelConfig& c, const FieldReader& reader, const std::string& source) {
  c.tie_word_embeddings = reader.bool_or("tie_word_embeddings", is_gemma(c.model_type));
  // A few configs give bos_token_id as a list, like eos_token_id; the first one starts a text.
  const std::vector<int64_t> bos = reader.int_or_int_list("bos_token_id");
  if (!bos.empty()) c.bos_token_id = bos.front();
  c.eos_token_ids = reader.int_or_int_list("eos_token_id");
  // transformers >= 4.56 writes "dtype"; older versions "torch_dtype".
  std::optional<std::string> dtype = reader.optional_string("torch_dtype");
  const char* dtype_field = "torch_dtype";
  if (!dtype) {
    dtype = reader.optional_string("dtype");
    dtype_field = "dtype";
  }
  if (dtype) {
    const std::optional<DType> parsed = dtype_from_torch_name(*dtype);
    PIPEPRUNE_CHECK(parsed.has_value(), ConfigError,
                    source << ": field '" << dtype_field << "' is \"" << *dtype
                           << "\"; expected float32, float16 or bfloat16");
    c.torch_dtype = *parsed;
  }
}

const char* architecture_name(const std::string& model_type) {
  if (model_type == "mistral") return "MistralForCausalLM";
  if (model_type == "qwen2") return "Qwen2ForCausalLM";
  if (model_type == "qwen3") return "Qwen3ForCausalLM";
  if (model_type == "gemma2") return "Gemma2ForCausalLM";
  if (model_type == "gemma3_text") return "Gemma3ForCausalLM";
  if (model_type == "phi3") return "Phi3ForCausalLM";
  return "LlamaForCausalLM";
}

nlohmann::json rope_json(const RopeScaling& rope, double theta) {
  nlohmann::json j = {{"rope_type", "default"}, {"rope_theta", theta}};
  if (rope.type == RopeScaling::Type::kLinear) {
    j["rope_type"] = "linear";
    j["factor"] = rope.factor;
  } else if (rope.type == RopeScaling::Type::kLongRope) {
    j["rope_type"] = "longrope";
    j["short_factor"] = rope.short_factor;
    // transformers requires long_factor; pipeprune never uses it (positions past the original
    // context), so the short factors stand in for a synthesized config.
    j["long_factor"] = rope.short_factor;
    j["factor"] = rope.factor;
    j["attention_factor"] = rope.attention_factor;
    j["original_max_position_embeddings"] = rope.original_max_position_embeddings;
  } else if (rope.type == RopeScaling::Type::kLlama3) {
    j["rope_type"] = "llama3";
    j["factor"] = rope.factor;
    j["low_freq_factor"] = rope.low_freq_factor;
    j["high_freq_factor"] = rope.high_freq_factor;
    j["original_max_position_embeddings"] = rope.original_max_position_embeddings;
  }
  return j;
}

nlohmann::json optional_number(const std::optional<double>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

}  // namespace

ModelConfig ModelConfig::from_json(const nlohmann::json& json, const std::string& source) {
  PIPEPRUNE_CHECK(json.is_object(), ConfigError,
                  source << ": expected a JSON object at the top level, got " << json.type_name());
  const FieldReader reader(json, source);
  ModelConfig c;
  read_architecture(c, reader, source);
  read_sizes(c, reader, source);
  read_attention(c, reader, json, source);
  if (is_gemma(c.model_type)) read_gemma(c, reader, json, source);
  if (c.model_type == "phi3") read_phi3(c, reader, json, source);
  read_tokens_and_dtype(c, reader, source);
  // Only kept to be written back by synth; a pad id of another form is no reason to refuse a model.
  if (json.contains("pad_token_id") && json.at("pad_token_id").is_number_integer()) {
    c.pad_token_id = json.at("pad_token_id").get<int64_t>();
  }
  if (c.model_type == "mistral" && reader.bool_or("attention_bias", false)) {
    log::warn("{}: attention_bias is ignored for mistral, as transformers does", source);
  }
  return c;
}

ModelConfig ModelConfig::from_file(const std::filesystem::path& config_json) {
  std::filesystem::path path = config_json;
  if (std::filesystem::is_directory(path)) path /= "config.json";
  return from_json(read_json_file(path), path.string());
}

nlohmann::json ModelConfig::to_json() const {
  const bool llama = model_type == "llama";
  const bool qwen2 = model_type == "qwen2";
  const bool gemma = is_gemma(model_type);
  const bool gemma3 = model_type == "gemma3_text";
  const bool phi3 = model_type == "phi3";
  PIPEPRUNE_CHECK(llama || qwen2 || gemma || phi3 || model_type == "mistral" || model_type == "qwen3", ConfigError,
                  "cannot write a config.json for model_type '" << model_type << "'");
  const bool llama_biases = llama || gemma || model_type == "qwen3";
  const bool biases_ok = llama_biases ? qkv_bias == o_bias : qwen2 ? (qkv_bias && !o_bias) : (!qkv_bias && !o_bias);
  PIPEPRUNE_CHECK(biases_ok && (llama || !mlp_bias), ConfigError,
                  "a " << model_type << " config.json cannot express qkv_bias=" << qkv_bias
                       << " o_bias=" << o_bias << " mlp_bias=" << mlp_bias);
  PIPEPRUNE_CHECK(!sliding_window || model_type == "mistral" || gemma || phi3, ConfigError,
                  "only a mistral, phi3 or gemma config.json can express sliding_window");
  nlohmann::json j;
  j["architectures"] = nlohmann::json::array({architecture_name(model_type)});
  j["model_type"] = model_type;
  if (gemma) {
    j["hidden_activation"] = "gelu_pytorch_tanh";
  } else {
    j["hidden_act"] = "silu";
  }
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = n_layers;
  j["num_attention_heads"] = n_heads;
  j["num_key_value_heads"] = n_kv_heads;
  j["head_dim"] = head_dim;
  j["vocab_size"] = vocab_size;
  j["max_position_embeddings"] = max_position_embeddings;
  j["rms_norm_eps"] = rms_norm_eps;
  if (gemma3) {
    j["rope_parameters"] = {{"full_attention", rope_json(rope_scaling, rope_theta)},
                            {"sliding_attention", rope_json({}, local_rope_theta.value_or(1e4))}};
  } else {
    j["rope_theta"] = rope_theta;
    if (rope_scaling.type == RopeScaling::Type::kNone) {
      j["rope_scaling"] = nullptr;
    } else {
      j["rope_scaling"] = rope_json(rope_scaling, rope_theta);
      j["rope_scaling"].erase("rope_theta");
    }
  }
  j["tie_word_embeddings"] = tie_word_embeddings;
  if (llama_biases) j["attention_bias"] = qkv_bias;
  if (llama) j["mlp_bias"] = mlp_bias;
  if (qwen2 || model_type == "qwen3") j["use_sliding_window"] = false;
  if (phi3) {
    j["partial_rotary_factor"] = partial_rotary_factor;
    if (rope_scaling.type == RopeScaling::Type::kLongRope) {
      j["original_max_position_embeddings"] = rope_scaling.original_max_position_embeddings;
    }
  }
  if (model_type == "mistral" || gemma || phi3) {
    j["sliding_window"] = sliding_window ? nlohmann::json(*sliding_window) : nlohmann::json(nullptr);
  }
  if (gemma) {
    // transformers 5 types it int and rejects 256.0.
    const double scalar = query_pre_attn_scalar.value_or(256);
    j["query_pre_attn_scalar"] =
        scalar == std::floor(scalar) ? nlohmann::json(static_cast<int64_t>(scalar)) : nlohmann::json(scalar);
    j["final_logit_softcapping"] = optional_number(final_logit_softcapping);
    j["attn_logit_softcapping"] = optional_number(attn_logit_softcapping);
    nlohmann::json types = nlohmann::json::array();
    for (int64_t l = 0; l < n_layers; ++l) types.push_back(layer_is_sliding(l) ? "sliding_attention" : "full_attention");
    j["layer_types"] = types;
  }
  j["torch_dtype"] = torch_dtype_name(torch_dtype);
  j["bos_token_id"] = bos_token_id ? nlohmann::json(*bos_token_id) : nlohmann::json(nullptr);
  // Phi3Config's default pad id (32000) is outside a small vocabulary, which transformers
  // rejects: state it, null when unknown.
  if (pad_token_id || phi3) j["pad_token_id"] = pad_token_id ? nlohmann::json(*pad_token_id) : nlohmann::json(nullptr);
  if (eos_token_ids.size() == 1) {
    j["eos_token_id"] = eos_token_ids[0];
  } else if (eos_token_ids.empty()) {
    j["eos_token_id"] = nullptr;
  } else {
    j["eos_token_id"] = eos_token_ids;
  }
  return j;
}

int64_t ModelConfig::context_positions() const {
  if (rope_scaling.type != RopeScaling::Type::kLongRope) return max_position_embeddings;
  return std::min(max_position_embeddings, rope_scaling.original_max_position_embeddings);
}

bool ModelConfig::layer_is_sliding(int64_t layer) const {
  if (!sliding_window) return false;
  if (sliding_layers.empty()) return true;
  return layer >= 0 && layer < static_cast<int64_t>(sliding_layers.size()) && sliding_layers[layer];
}

ModelConfig ModelConfig::local_rope_config() const {
  ModelConfig out = *this;
  out.rope_theta = local_rope_theta.value();
  out.rope_scaling = {};
  return out;
}

const char* supported_model_types_text() { return "llama, mistral, qwen2, qwen3, phi3, gemma2 and gemma3_text"; }

bool operator==(const RopeScaling& a, const RopeScaling& b) {
  if (a.type != b.type) return false;
  if (a.type == RopeScaling::Type::kNone) return true;
  if (a.factor != b.factor) return false;
  if (a.type == RopeScaling::Type::kLinear) return true;
  if (a.type == RopeScaling::Type::kLongRope) {
    return a.short_factor == b.short_factor && a.attention_factor == b.attention_factor &&
           a.original_max_position_embeddings == b.original_max_position_embeddings;
  }
  return a.low_freq_factor == b.low_freq_factor && a.high_freq_factor == b.high_freq_factor &&
         a.original_max_position_embeddings == b.original_max_position_embeddings;
}

bool operator==(const ModelConfig& a, const ModelConfig& b) {
  return a.model_type == b.model_type && a.hidden_size == b.hidden_size &&
         a.intermediate_size == b.intermediate_size && a.n_layers == b.n_layers &&
         a.n_heads == b.n_heads && a.n_kv_heads == b.n_kv_heads && a.head_dim == b.head_dim &&
         a.vocab_size == b.vocab_size && a.max_position_embeddings == b.max_position_embeddings &&
         a.rms_norm_eps == b.rms_norm_eps && a.rope_theta == b.rope_theta &&
         a.rope_scaling == b.rope_scaling && a.tie_word_embeddings == b.tie_word_embeddings &&
         a.qkv_bias == b.qkv_bias && a.o_bias == b.o_bias && a.mlp_bias == b.mlp_bias &&
         a.sliding_window == b.sliding_window && a.sliding_layers == b.sliding_layers &&
         a.fused_projections == b.fused_projections && a.partial_rotary_factor == b.partial_rotary_factor &&
         a.qk_norm == b.qk_norm && a.norm_plus_one == b.norm_plus_one && a.sandwich_norms == b.sandwich_norms &&
         a.scale_embeddings == b.scale_embeddings && a.activation == b.activation &&
         a.query_pre_attn_scalar == b.query_pre_attn_scalar &&
         a.attn_logit_softcapping == b.attn_logit_softcapping &&
         a.final_logit_softcapping == b.final_logit_softcapping && a.local_rope_theta == b.local_rope_theta &&
         a.torch_dtype == b.torch_dtype &&
         a.bos_token_id == b.bos_token_id && a.pad_token_id == b.pad_token_id && a.eos_token_ids == b.eos_token_ids;
}

}  // namespace pipeprune
