#include "core/model/model_config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/common/error.h"

namespace pipeprune {
namespace {

using nlohmann::json;

const char* kSource = "/models/x/config.json";

json llama_json() {
  return json::parse(R"({
    "model_type": "llama", "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 5,
    "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 512,
    "max_position_embeddings": 512, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
    "rope_scaling": null, "tie_word_embeddings": true, "torch_dtype": "float32",
    "bos_token_id": 1, "eos_token_id": 2, "attention_bias": false, "mlp_bias": false})");
}

// Qwen2-0.5B's config.json, trimmed to the fields that matter.
json qwen2_json() {
  return json::parse(R"({
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896,
    "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
    "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
    "max_window_layers": 24, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
    "sliding_window": 32768, "use_sliding_window": false, "tie_word_embeddings": true,
    "torch_dtype": "bfloat16", "bos_token_id": 151643, "eos_token_id": 151643,
    "hidden_act": "silu"})");
}

// Expects a ConfigError whose message holds every one of `parts`.
void expect_config_error(const json& j, const std::vector<std::string>& parts) {
  try {
    ModelConfig::from_json(j, kSource);
    ADD_FAILURE() << "no ConfigError for " << j.dump();
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    for (const std::string& part : parts) {
      EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
    }
  }
}

TEST(ModelConfig, Stories260K_AllFieldsRead) {
  const ModelConfig c = ModelConfig::from_file(std::string(PIPEPRUNE_SOURCE_DIR) + "/examples/stories260K");
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_position_embeddings, 512);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kNone);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.qkv_bias || c.o_bias || c.mlp_bias);
  EXPECT_EQ(c.torch_dtype, DType::kF32);
  EXPECT_EQ(c.bos_token_id, std::optional<int64_t>(1));
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(c.q_size(), 64);
  EXPECT_EQ(c.kv_size(), 32);
  EXPECT_EQ(c.n_kv_groups(), 2);
}

TEST(ModelConfig, Qwen2_QkvBiasNoOBias) {
  const ModelConfig c = ModelConfig::from_json(qwen2_json(), kSource);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_FALSE(c.mlp_bias);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.torch_dtype, DType::kBF16);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_FALSE(c.sliding_window.has_value());  // only mistral applies it
}

TEST(ModelConfig, LlamaAttentionBias_AllFourAttentionBiases) {
  json j = llama_json();
  j["attention_bias"] = true;
  j["mlp_bias"] = true;
  const ModelConfig c = ModelConfig::from_json(j, kSource);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_TRUE(c.o_bias);
  EXPECT_TRUE(c.mlp_bias);
}

TEST(ModelConfig, Mistral_SlidingWindowReadBiasesIgnored) {
  json j = llama_json();
  j["model_type"] = "mistral";
  j["sliding_window"] = 4096;
  j["attention_bias"] = true;
  j.erase("max_position_embeddings");
  const ModelConfig c = ModelConfig::from_json(j, kSource);
  EXPECT_EQ(c.sliding_window, std::optional<int64_t>(4096));
  EXPECT_FALSE(c.qkv_bias || c.o_bias);
  EXPECT_EQ(c.max_position_embeddings, 131072);  // transformers' MistralConfig default
  j["sliding_window"] = nullptr;
  EXPECT_FALSE(ModelConfig::from_json(j, kSource).sliding_window.has_value());
}

TEST(ModelConfig, OptionalFieldsAbsent_TransformersDefaults) {
  json j = json::parse(R"({"model_type": "llama", "hidden_size": 48, "intermediate_size": 96,
                           "num_hidden_layers": 2, "num_attention_heads": 6, "vocab_size": 100})");
  const ModelConfig c = ModelConfig::from_json(j, kSource);
  EXPECT_EQ(c.n_kv_heads, 6);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.torch_dtype, DType::kF32);
  EXPECT_FALSE(c.bos_token_id.has_value());
  EXPECT_TRUE(c.eos_token_ids.empty());
  j["model_type"] = "qwen2";
  EXPECT_EQ(ModelConfig::from_json(j, kSource).max_position_embeddings, 32768);
}

TEST(ModelConfig, HeadDimGiven_OverridesHiddenOverHeads) {
  json j = llama_json();
  j["head_dim"] = 16;
  const ModelConfig c = ModelConfig::from_json(j, kSource);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.q_size(), 128);
  j["head_dim"] = nullptr;  // null means "not given"
  EXPECT_EQ(ModelConfig::from_json(j, kSource).head_dim, 8);
}

TEST(ModelConfig, EosList_AllIdsKept) {
  json j = llama_json();
  j["eos_token_id"] = {128001, 128008, 128009};
  EXPECT_EQ(ModelConfig::from_json(j, kSource).eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
}

TEST(ModelConfig, BosList_FirstIdStartsText) {
  json j = llama_json();
  j["bos_token_id"] = {5, 6};
  EXPECT_EQ(ModelConfig::from_json(j, kSource).bos_token_id, std::optional<int64_t>(5));
  j["bos_token_id"] = json::array();
  EXPECT_FALSE(ModelConfig::from_json(j, kSource).bos_token_id.has_value());
}

TEST(ModelConfig, RopeLlama3_ParametersRead) {
  json j = llama_json();
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  const RopeScaling r = ModelConfig::from_json(j, kSource).rope_scaling;
  EXPECT_EQ(r.type, RopeScaling::Type::kLlama3);
  EXPECT_DOUBLE_EQ(r.factor, 8.0);
  EXPECT_DOUBLE_EQ(r.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(r.high_freq_factor, 4.0);
  EXPECT_EQ(r.original_max_position_embeddings, 8192);
}

TEST(ModelConfig, RopeLinearOldTypeKey_Read) {
  json j = llama_json();
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 4}};
  const RopeScaling r = ModelConfig::from_json(j, kSource).rope_scaling;
  EXPECT_EQ(r.type, RopeScaling::Type::kLinear);
  EXPECT_DOUBLE_EQ(r.factor, 4.0);
  j["rope_scaling"] = {{"rope_type", "default"}};
  EXPECT_EQ(ModelConfig::from_json(j, kSource).rope_scaling.type, RopeScaling::Type::kNone);
}

TEST(ModelConfig, RopeParametersTransformers5_Read) {
  json j = llama_json();
  j.erase("rope_scaling");
  j.erase("rope_theta");
  j["rope_parameters"] = {{"rope_type", "linear"}, {"factor", 2.0}, {"rope_theta", 500000.0}};
  const ModelConfig c = ModelConfig::from_json(j, kSource);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kLinear);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
}

TEST(ModelConfig, UnsupportedRopeTypes_ConfigErrorNamingField) {
  for (const char* type : {"yarn", "dynamic", "longrope", "ntk"}) {
    json j = llama_json();
    j["rope_scaling"] = {{"rope_type", type}, {"factor", 2.0}};
    expect_config_error(j, {kSource, "rope_scaling.rope_type", type});
  }
  json j = llama_json();
  j["rope_scaling"] = {{"factor", 2.0}};
  expect_config_error(j, {kSource, "rope_scaling.rope_type"});
}

TEST(ModelConfig, RopeScalingBadFields_ConfigErrorNamingField) {
  json j = llama_json();
  j["rope_scaling"] = {{"rope_type", "linear"}};
  expect_config_error(j, {kSource, "missing field 'rope_scaling.factor'"});
  j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", "2"}};
  expect_config_error(j, {kSource, "'rope_scaling.factor' must be a number"});
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0}};
  expect_config_error(j, {kSource, "rope_scaling.original_max_position_embeddings"});
  j["rope_scaling"] = "linear";
  expect_config_error(j, {kSource, "'rope_scaling' must be null or an object"});
}

TEST(ModelConfig, MissingRequiredField_ConfigErrorNamingFileAndField) {
  for (const char* field : {"hidden_size", "intermediate_size", "num_hidden_layers",
                            "num_attention_heads", "vocab_size", "model_type"}) {
    json j = llama_json();
    j.erase(field);
    expect_config_error(j, {std::string(kSource) + ": missing field '" + field + "'"});
  }
  json j = llama_json();
  j["hidden_size"] = nullptr;
  expect_config_error(j, {"missing field 'hidden_size'"});
}

TEST(ModelConfig, UnsupportedModelType_ConfigError) {
  json j = llama_json();
  j["model_type"] = "gpt2";
  expect_config_error(j, {kSource, "model_type", "gpt2"});
  j["model_type"] = 3;
  expect_config_error(j, {kSource, "'model_type' must be a string"});
}

TEST(ModelConfig, WrongJsonTypes_ConfigErrorNamingField) {
  const std::vector<std::pair<std::string, json>> cases = {
      {"hidden_size", "64"}, {"num_attention_heads", 8.5}, {"num_key_value_heads", true},
      {"tie_word_embeddings", "true"}, {"rope_theta", "10000"}, {"rms_norm_eps", json::array()},
      {"eos_token_id", "2"}, {"torch_dtype", 16}, {"attention_bias", 1}};
  for (const auto& [field, value] : cases) {
    json j = llama_json();
    j[field] = value;
    expect_config_error(j, {kSource, "'" + field + "' must be"});
  }
  expect_config_error(json::array(), {kSource, "JSON object"});
}

TEST(ModelConfig, InconsistentSizes_ConfigError) {
  json j = llama_json();
  j["hidden_size"] = 60;  // not divisible by 8 heads
  expect_config_error(j, {kSource, "hidden_size", "num_attention_heads"});
  j = llama_json();
  j["num_key_value_heads"] = 3;
  expect_config_error(j, {kSource, "num_key_value_heads (3)"});
  j = llama_json();
  j["vocab_size"] = 0;
  expect_config_error(j, {kSource, "'vocab_size' must be positive"});
  j = llama_json();
  j["num_hidden_layers"] = -1;
  expect_config_error(j, {kSource, "'num_hidden_layers' must be positive"});
  j = llama_json();
  j["head_dim"] = 7;
  expect_config_error(j, {kSource, "'head_dim' (7) must be even"});
  j = llama_json();
  j["hidden_act"] = "gelu";
  expect_config_error(j, {kSource, "hidden_act", "gelu"});
  j = llama_json();
  j["torch_dtype"] = "int8";
  expect_config_error(j, {kSource, "torch_dtype", "int8"});
  j = qwen2_json();
  j["use_sliding_window"] = true;
  expect_config_error(j, {kSource, "use_sliding_window"});
}

TEST(ModelConfig, ToJson_RoundTrips) {
  std::vector<json> inputs = {llama_json(), qwen2_json()};
  json j = llama_json();
  j["attention_bias"] = true;
  j["mlp_bias"] = true;
  j["head_dim"] = 16;
  j["eos_token_id"] = {1, 2};
  j["bos_token_id"] = nullptr;
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 64}};
  j["torch_dtype"] = "float16";
  inputs.push_back(j);
  j = llama_json();
  j["model_type"] = "mistral";
  j["sliding_window"] = 7;
  j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.5}};
  inputs.push_back(j);
  for (const json& input : inputs) {
    const ModelConfig original = ModelConfig::from_json(input, kSource);
    const json written = original.to_json();
    const ModelConfig reread = ModelConfig::from_json(json::parse(written.dump()), "written");
    EXPECT_TRUE(reread == original) << written.dump();
  }
}

TEST(ModelConfig, ToJson_UnrepresentableBiases_ConfigError) {
  ModelConfig c = ModelConfig::from_json(llama_json(), kSource);
  c.qkv_bias = true;  // llama ties q,k,v and o biases to one attention_bias flag
  EXPECT_THROW(c.to_json(), ConfigError);
}

// Qwen3-0.6B's config.json, trimmed: head_dim 128 != 1024 / 16, q/k norms, no biases.
json qwen3_json() {
  return json::parse(R"({
    "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 1024,
    "intermediate_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16,
    "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936, "max_position_embeddings": 40960,
    "max_window_layers": 28, "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000,
    "sliding_window": null, "use_sliding_window": false, "tie_word_embeddings": true,
    "attention_bias": false, "torch_dtype": "bfloat16", "bos_token_id": 151643, "eos_token_id": 151645,
    "hidden_act": "silu"})");
}

// gemma-2-2b's config.json, trimmed.
json gemma2_json() {
  return json::parse(R"({
    "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "hidden_size": 2304,
    "intermediate_size": 9216, "num_hidden_layers": 26, "num_attention_heads": 8,
    "num_key_value_heads": 4, "head_dim": 256, "vocab_size": 256000, "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "hidden_act": "gelu_pytorch_tanh",
    "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": 256, "sliding_window": 4096,
    "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0, "attention_bias": false,
    "torch_dtype": "float32", "bos_token_id": 2, "eos_token_id": [1, 107], "pad_token_id": 0})");
}

// gemma-3-1b-pt's config.json (transformers 4.50 style), trimmed.
json gemma3_json() {
  return json::parse(R"({
    "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "hidden_size": 1152,
    "intermediate_size": 6912, "num_hidden_layers": 26, "num_attention_heads": 4,
    "num_key_value_heads": 1, "head_dim": 256, "vocab_size": 262144, "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000, "rope_local_base_freq": 10000, "rope_scaling": null,
    "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": 256, "sliding_window": 512,
    "sliding_window_pattern": 6, "attn_logit_softcapping": null, "final_logit_softcapping": null,
    "attention_bias": false, "torch_dtype": "bfloat16", "bos_token_id": 2, "eos_token_id": 1})");
}

TEST(ModelConfig, Qwen3_QkNormsNoBiasesFamilyDefaults) {
  const ModelConfig c = ModelConfig::from_json(qwen3_json(), kSource);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias || c.o_bias || c.mlp_bias || c.norm_plus_one || c.sandwich_norms);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_FALSE(c.sliding_window.has_value());
  json j = qwen3_json();
  j.erase("head_dim");
  j.erase("tie_word_embeddings");
  j.erase("max_position_embeddings");
  j["attention_bias"] = true;
  const ModelConfig d = ModelConfig::from_json(j, kSource);
  EXPECT_EQ(d.head_dim, 128);  // Qwen3Config's default, not 1024 / 16
  EXPECT_FALSE(d.tie_word_embeddings);
  EXPECT_EQ(d.max_position_embeddings, 32768);
  EXPECT_TRUE(d.qkv_bias && d.o_bias);  // attention_bias: q, k, v and o
  j["use_sliding_window"] = true;
  expect_config_error(j, {kSource, "use_sliding_window"});
}

TEST(ModelConfig, Gemma2_StructureCapsAndAlternatingLayers) {
  const ModelConfig c = ModelConfig::from_json(gemma2_json(), kSource);
  EXPECT_TRUE(c.norm_plus_one && c.sandwich_norms && c.scale_embeddings);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.activation, Activation::kGeluTanh);
  EXPECT_TRUE(c.tie_word_embeddings);  // absent: gemma's default
  EXPECT_EQ(c.query_pre_attn_scalar, std::optional<double>(256));
  EXPECT_EQ(c.attn_logit_softcapping, std::optional<double>(50));
  EXPECT_EQ(c.final_logit_softcapping, std::optional<double>(30));
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{1, 107}));
  for (int64_t l = 0; l < 4; ++l) EXPECT_EQ(c.layer_is_sliding(l), l % 2 == 0) << l;
  json j = gemma2_json();
  for (const char* field : {"head_dim", "query_pre_attn_scalar", "sliding_window", "attn_logit_softcapping",
                            "final_logit_softcapping", "max_position_embeddings"}) {
    j.erase(field);
  }
  const ModelConfig d = ModelConfig::from_json(j, kSource);
  EXPECT_EQ(d.head_dim, 256);
  EXPECT_EQ(d.sliding_window, std::optional<int64_t>(4096));
  EXPECT_EQ(d.attn_logit_softcapping, std::optional<double>(50));
  EXPECT_EQ(d.max_position_embeddings, 8192);
  j["attn_logit_softcapping"] = nullptr;  // null turns capping off
  EXPECT_FALSE(ModelConfig::from_json(j, kSource).attn_logit_softcapping.has_value());
  j["layer_types"] = json::array({"full_attention", "sliding_attention"});
  expect_config_error(j, {kSource, "layer_types", "one type per layer"});
  j["hidden_activation"] = "gelu";
  expect_config_error(j, {kSource, "hidden_activation", "gelu_pytorch_tanh"});
}

TEST(ModelConfig, Gemma3Text_LocalRopeAndPatternBothFormats) {
  const ModelConfig c = ModelConfig::from_json(gemma3_json(), kSource);
  EXPECT_TRUE(c.qk_norm && c.norm_plus_one && c.sandwich_norms);
  EXPECT_FALSE(c.attn_logit_softcapping.has_value());
  EXPECT_FALSE(c.final_logit_softcapping.has_value());
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.local_rope_theta, std::optional<double>(1e4));
  for (int64_t l = 0; l < 12; ++l) EXPECT_EQ(c.layer_is_sliding(l), l % 6 != 5) << l;
  // transformers 5 writes rope_parameters per layer type and the layer types themselves.
  json j = gemma3_json();
  j.erase("rope_theta");
  j.erase("rope_local_base_freq");
  j.erase("rope_scaling");
  j.erase("sliding_window_pattern");
  j["rope_parameters"] = {{"full_attention", {{"rope_type", "linear"}, {"factor", 8.0}, {"rope_theta", 1e6}}},
                          {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 1e4}}}};
  json types = json::array();
  for (int64_t l = 0; l < 26; ++l) types.push_back(l % 6 == 5 ? "full_attention" : "sliding_attention");
  j["layer_types"] = types;
  const ModelConfig d = ModelConfig::from_json(j, kSource);
  EXPECT_EQ(d.rope_scaling.type, RopeScaling::Type::kLinear);
  EXPECT_EQ(d.rope_scaling.factor, 8.0);
  EXPECT_EQ(d.sliding_layers, c.sliding_layers);
  EXPECT_EQ(d.local_rope_theta, c.local_rope_theta);
  // Round trip of both.
  for (const ModelConfig& config : {c, d}) {
    EXPECT_TRUE(ModelConfig::from_json(json::parse(config.to_json().dump()), "written") == config);
  }
  EXPECT_TRUE(ModelConfig::from_json(json::parse(ModelConfig::from_json(gemma2_json(), kSource).to_json().dump()),
                                     "written") == ModelConfig::from_json(gemma2_json(), kSource));
  EXPECT_TRUE(ModelConfig::from_json(json::parse(ModelConfig::from_json(qwen3_json(), kSource).to_json().dump()),
                                     "written") == ModelConfig::from_json(qwen3_json(), kSource));
  j["rope_parameters"]["sliding_attention"] = {{"rope_type", "linear"}, {"factor", 2.0}};
  expect_config_error(j, {kSource, "rope_parameters.sliding_attention"});
}

// Phi-3.5-mini's config.json shape, scaled down: LongRoPE over 131072 / 4096 positions.
json phi3_json() {
  return json::parse(R"({
    "architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
    "vocab_size": 512, "max_position_embeddings": 131072, "original_max_position_embeddings": 4096,
    "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 262144, "tie_word_embeddings": false,
    "rope_scaling": {"type": "longrope", "short_factor": [1.0, 1.1, 1.2, 1.5, 2.0, 3.0, 5.0, 8.0],
                     "long_factor": [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]},
    "torch_dtype": "bfloat16", "bos_token_id": 1, "eos_token_id": 32000, "hidden_act": "silu"})");
}

TEST(ModelConfig, Phi3_FusedLongRopeFactorsDerivedAsTransformers) {
  const ModelConfig c = ModelConfig::from_json(phi3_json(), kSource);
  EXPECT_TRUE(c.fused_projections);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kLongRope);
  EXPECT_EQ(c.rope_scaling.short_factor.size(), 8u);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);  // 131072 / 4096
  EXPECT_DOUBLE_EQ(c.rope_scaling.attention_factor, std::sqrt(1 + std::log(32.0) / std::log(4096.0)));
  EXPECT_EQ(c.rotary_dim(), 16);
  EXPECT_EQ(c.context_positions(), 4096);  // the long factors beyond it are not implemented
  EXPECT_EQ(ModelConfig::from_json(llama_json(), kSource).context_positions(), 512);
  EXPECT_EQ(c.sliding_window, std::optional<int64_t>(262144));
  EXPECT_TRUE(ModelConfig::from_json(json::parse(c.to_json().dump()), "written") == c) << c.to_json().dump();
  // Phi-4-mini: partial_rotary_factor 0.75 (in transformers 5 inside rope_parameters).
  json j = phi3_json();
  j.erase("rope_scaling");
  j.erase("rope_theta");
  j["rope_parameters"] = {{"rope_type", "longrope"}, {"rope_theta", 10000.0}, {"partial_rotary_factor", 0.75},
                          {"short_factor", {1.0, 1.0, 2.0, 2.0, 3.0, 3.0}}, {"long_factor", {1, 1, 1, 1, 1, 1}},
                          {"original_max_position_embeddings", 4096}};
  const ModelConfig d = ModelConfig::from_json(j, kSource);
  EXPECT_EQ(d.rotary_dim(), 12);
  EXPECT_EQ(d.rope_scaling.short_factor.size(), 6u);
  EXPECT_TRUE(ModelConfig::from_json(json::parse(d.to_json().dump()), "written") == d) << d.to_json().dump();
  j["rope_parameters"]["short_factor"] = {1.0, 2.0};
  expect_config_error(j, {kSource, "short_factor", "has 2 entries", "(6)"});
  // The old name "su", and the factor given.
  json su = phi3_json();
  su["rope_scaling"]["type"] = "su";
  su["rope_scaling"]["factor"] = 4.0;
  const ModelConfig e = ModelConfig::from_json(su, kSource);
  EXPECT_EQ(e.rope_scaling.type, RopeScaling::Type::kLongRope);
  EXPECT_DOUBLE_EQ(e.rope_scaling.attention_factor, std::sqrt(1 + std::log(4.0) / std::log(4096.0)));
  json llama = llama_json();
  llama["rope_scaling"] = phi3_json()["rope_scaling"];
  expect_config_error(llama, {kSource, "rope_scaling.rope_type", "longrope", "phi3 only"});
}

TEST(ModelConfig, VisionOrMoeModelTypes_ErrorListsSupported) {
  json j = gemma3_json();
  j["model_type"] = "gemma3";
  expect_config_error(j, {kSource, "gemma3_text", "llama, mistral, qwen2, qwen3, phi3, gemma2 and gemma3_text"});
  j["model_type"] = "qwen3_moe";
  expect_config_error(j, {kSource, "qwen3_moe", "llama, mistral, qwen2, qwen3, phi3, gemma2 and gemma3_text"});
  // A per-layer-type rope_parameters belongs to gemma3_text only.
  json q = qwen3_json();
  q["rope_parameters"] = {{"full_attention", {{"rope_type", "default"}}}};
  expect_config_error(q, {kSource, "rope_parameters"});
}

TEST(ModelConfig, FromFileInvalidJson_FormatErrorNamingFile) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "pipeprune_model_config_test";
  std::filesystem::create_directories(dir);
  const std::filesystem::path path = dir / "config.json";
  std::ofstream(path) << "{\"model_type\": \"llama\",";
  try {
    ModelConfig::from_file(dir);
    ADD_FAILURE() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
  std::ofstream(path) << llama_json().dump();
  try {
    json j = llama_json();
    j.erase("vocab_size");
    std::ofstream(path) << j.dump();
    ModelConfig::from_file(path);
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(path.string() + ": missing field 'vocab_size'"), std::string::npos)
        << e.what();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pipeprune
