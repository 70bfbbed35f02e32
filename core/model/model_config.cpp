#include "core/model/model_config.h"

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
                            << "'; a llama/mistral/qwen2 config.json states it, add it");
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
  if (model_type == "mistral") return 4096 * 32;
  if (model_type == "qwen2") return 32768;
  return 2048;
}

// rope_scaling (transformers <= 4.x) or rope_parameters (5.x): null/absent, or an object.
RopeScaling parse_rope_scaling(const json& value, const std::string& source, const char* field) {
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
                                       << "\"llama3\" rope scaling");
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
  PIPEPRUNE_CHECK(c.model_type == "llama" || c.model_type == "mistral" || c.model_type == "qwen2",
                  ConfigError,
                  source << ": field 'model_type' is \"" << c.model_type
                         << "\"; pipeprune supports llama, mistral and qwen2 decoders");
  const std::string act = reader.optional_string("hidden_act").value_or("silu");
  PIPEPRUNE_CHECK(act == "silu", ConfigError,
                  source << ": field 'hidden_act' is \"" << act
                         << "\"; llama/mistral/qwen2 decoders use \"silu\"");
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
  if (reader.has("head_dim")) {
    c.head_dim = reader.required_int("head_dim");
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

void read_attention(ModelConfig& c, const FieldReader& reader, const nlohmann::json& json,
                    const std::string& source) {
  c.rms_norm_eps = reader.number_or("rms_norm_eps", 1e-6);
  PIPEPRUNE_CHECK(c.rms_norm_eps > 0, ConfigError,
                  source << ": field 'rms_norm_eps' must be positive, got " << c.rms_norm_eps);
  if (json.contains("rope_scaling") || !json.contains("rope_parameters")) {
    c.rope_theta = reader.number_or("rope_theta", 10000.0);
    if (json.contains("rope_scaling")) {
      c.rope_scaling = parse_rope_scaling(json.at("rope_scaling"), source, "rope_scaling");
    }
  } else {
    // transformers 5 moved rope_theta and the scaling into one rope_parameters object.
    const nlohmann::json& params = json.at("rope_parameters");
    c.rope_scaling = parse_rope_scaling(params, source, "rope_parameters");
    c.rope_theta = params.is_object()
                       ? FieldReader(params, source, "rope_parameters.").number_or("rope_theta", 10000.0)
                       : 10000.0;
  }
  PIPEPRUNE_CHECK(c.rope_theta > 0, ConfigError,
                  source << ": field 'rope_theta' must be positive, got " << c.rope_theta);

  if (c.model_type == "qwen2") {
    c.qkv_bias = true;
    PIPEPRUNE_CHECK(!reader.bool_or("use_sliding_window", false), ConfigError,
                    source << ": field 'use_sliding_window' is true; pipeprune supports qwen2 "
                           << "with full attention only (set it to false)");
  } else if (c.model_type == "llama") {
    c.qkv_bias = c.o_bias = reader.bool_or("attention_bias", false);
    c.mlp_bias = reader.bool_or("mlp_bias", false);
  } else {  // mistral
    c.sliding_window = reader.optional_int("sliding_window");
    if (c.sliding_window) check_positive(*c.sliding_window, "sliding_window", source);
  }
}

void read_tokens_and_dtype(ModelConfig& c, const FieldReader& reader, const std::string& source) {
  c.tie_word_embeddings = reader.bool_or("tie_word_embeddings", false);
  c.bos_token_id = reader.optional_int("bos_token_id");
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
  return "LlamaForCausalLM";
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
  read_tokens_and_dtype(c, reader, source);
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
  PIPEPRUNE_CHECK(llama || qwen2 || model_type == "mistral", ConfigError,
                  "cannot write a config.json for model_type '" << model_type << "'");
  const bool biases_ok = llama ? qkv_bias == o_bias : qwen2 ? (qkv_bias && !o_bias) : (!qkv_bias && !o_bias);
  PIPEPRUNE_CHECK(biases_ok && (llama || !mlp_bias), ConfigError,
                  "a " << model_type << " config.json cannot express qkv_bias=" << qkv_bias
                       << " o_bias=" << o_bias << " mlp_bias=" << mlp_bias);
  PIPEPRUNE_CHECK(!sliding_window || model_type == "mistral", ConfigError,
                  "only a mistral config.json can express sliding_window");
  nlohmann::json j;
  j["architectures"] = nlohmann::json::array({architecture_name(model_type)});
  j["model_type"] = model_type;
  j["hidden_act"] = "silu";
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = n_layers;
  j["num_attention_heads"] = n_heads;
  j["num_key_value_heads"] = n_kv_heads;
  j["head_dim"] = head_dim;
  j["vocab_size"] = vocab_size;
  j["max_position_embeddings"] = max_position_embeddings;
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  if (rope_scaling.type == RopeScaling::Type::kNone) {
    j["rope_scaling"] = nullptr;
  } else if (rope_scaling.type == RopeScaling::Type::kLinear) {
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", rope_scaling.factor}};
  } else {
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", rope_scaling.factor},
                         {"low_freq_factor", rope_scaling.low_freq_factor},
                         {"high_freq_factor", rope_scaling.high_freq_factor},
                         {"original_max_position_embeddings", rope_scaling.original_max_position_embeddings}};
  }
  j["tie_word_embeddings"] = tie_word_embeddings;
  if (llama) {
    j["attention_bias"] = qkv_bias;
    j["mlp_bias"] = mlp_bias;
  }
  if (qwen2) j["use_sliding_window"] = false;
  if (model_type == "mistral") {
    j["sliding_window"] = sliding_window ? nlohmann::json(*sliding_window) : nlohmann::json(nullptr);
  }
  j["torch_dtype"] = torch_dtype_name(torch_dtype);
  j["bos_token_id"] = bos_token_id ? nlohmann::json(*bos_token_id) : nlohmann::json(nullptr);
  if (eos_token_ids.size() == 1) {
    j["eos_token_id"] = eos_token_ids[0];
  } else if (eos_token_ids.empty()) {
    j["eos_token_id"] = nullptr;
  } else {
    j["eos_token_id"] = eos_token_ids;
  }
  return j;
}

bool operator==(const RopeScaling& a, const RopeScaling& b) {
  if (a.type != b.type) return false;
  if (a.type == RopeScaling::Type::kNone) return true;
  if (a.factor != b.factor) return false;
  if (a.type == RopeScaling::Type::kLinear) return true;
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
         a.sliding_window == b.sliding_window && a.torch_dtype == b.torch_dtype &&
         a.bos_token_id == b.bos_token_id && a.eos_token_ids == b.eos_token_ids;
}

}  // namespace pipeprune
