#include "core/model/synthetic_model.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <string>

#include "core/common/error.h"
#include "core/common/files.h"
#include "core/io/safetensors.h"
#include "core/model/layer_weights.h"
#include "core/model/model_spec.h"
#include "unit/model/checkpoint_util.h"

namespace pipeprune {
namespace {

const std::filesystem::path kSource = PIPEPRUNE_SOURCE_DIR;

// Small enough to write in milliseconds, with GQA, qkv biases and untied embeddings.
ModelConfig small_config(const std::string& model_type = "qwen2") {
  ModelConfig c;
  c.model_type = model_type;
  c.hidden_size = 64;
  c.intermediate_size = 176;
  c.n_layers = 3;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.vocab_size = 300;
  c.max_position_embeddings = 256;
  c.rms_norm_eps = 1e-6;
  c.qkv_bias = model_type == "qwen2";
  return c;
}

SynthOptions small_options(const std::filesystem::path& output, DType dtype = DType::kF32, uint64_t seed = 0) {
  SynthOptions o;
  o.config = small_config();
  o.dtype = dtype;
  o.seed = seed;
  o.output = output;
  o.progress = false;
  return o;
}

// Every file of a folder with its bytes.
std::map<std::string, std::string> folder_bytes(const std::filesystem::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    out[entry.path().filename().string()] = read_file(entry.path());
  }
  return out;
}

TEST(SyntheticModel, SmallConfig_OpensAndLoadsWithExpectedValues) {
  testing::TempDir tmp("synth_load");
  const auto out = tmp.path() / "model";
  const SynthResult result = write_synthetic_model(small_options(out));
  const ModelConfig config = small_config();
  EXPECT_EQ(result.n_parameters, count_parameters(config));
  EXPECT_EQ(result.n_files, 1);

  const ModelSpec spec = ModelSpec::open(out);  // validates every tensor's shape
  EXPECT_EQ(spec.config.n_layers, 3);
  EXPECT_EQ(spec.layer_dtype(), DType::kF32);
  EXPECT_EQ(spec.config.torch_dtype, DType::kF32);
  EXPECT_TRUE(spec.ignored_tensors.empty());
  EXPECT_EQ(spec.bytes_total(), result.n_bytes);

  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(out);
  for (int64_t l = 0; l < 3; ++l) {
    const DecoderLayerWeights w = load_decoder_layer(checkpoint, spec.config, l);
    EXPECT_TRUE(at::equal(w.norm(NormKind::kInput), at::ones({64})));
    EXPECT_TRUE(at::equal(w.norm(NormKind::kPostAttention), at::ones({64})));
    for (LinearKind kind : {LinearKind::kQ, LinearKind::kK, LinearKind::kV}) {
      ASSERT_TRUE(w[kind].bias.defined());
      EXPECT_EQ(w[kind].bias.abs().max().item<float>(), 0.0f);
    }
    EXPECT_FALSE(w[LinearKind::kO].bias.defined());
  }
  EXPECT_TRUE(at::equal(checkpoint.load("model.norm.weight"), at::ones({64})));
  // No tokenizer unless asked for one.
  EXPECT_FALSE(std::filesystem::exists(out / "tokenizer.json"));
  EXPECT_FALSE(std::filesystem::exists(StagedDirectory::staging_path_for(out)));
}

TEST(SyntheticModel, RandomTensors_MeanZeroStd002AndNormalShape) {
  testing::TempDir tmp("synth_stats");
  const auto out = tmp.path() / "model";
  write_synthetic_model(small_options(out));
  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(out);
  // All random tensors together: ~170k values.
  std::vector<at::Tensor> parts;
  for (const std::string& name : checkpoint.names()) {
    if (synthetic_fill_of(name) == SynthFill::kNormal) parts.push_back(checkpoint.load(name).flatten().to(at::kDouble));
  }
  const at::Tensor all = at::cat(parts);
  const double n = static_cast<double>(all.numel());
  ASSERT_GT(n, 100000);
  const double mean = all.mean().item<double>();
  const double std = all.std().item<double>();
  EXPECT_LT(std::abs(mean), 5 * 0.02 / std::sqrt(n));
  EXPECT_NEAR(std, 0.02, 0.02 * 0.01);
  // Normal, not merely the right moments: mass within 1 and 2 sigma, and no absurd outliers.
  const at::Tensor z = all / 0.02;
  EXPECT_NEAR(z.abs().lt(1).to(at::kDouble).mean().item<double>(), 0.682689, 0.005);
  EXPECT_NEAR(z.abs().lt(2).to(at::kDouble).mean().item<double>(), 0.954500, 0.003);
  EXPECT_LT(z.abs().max().item<double>(), 6.0);
  // Different tensors are different streams (not one stream restarted per tensor).
  EXPECT_FALSE(at::equal(checkpoint.load("model.layers.0.mlp.up_proj.weight"),
                         checkpoint.load("model.layers.0.mlp.gate_proj.weight")));
}

TEST(SyntheticModel, FillNormal_IndependentOfChunkingAndThreads) {
  const uint64_t key = synthetic_tensor_key(7, "model.layers.0.mlp.up_proj.weight");
  at::Tensor whole = at::empty({100001}, at::kFloat);
  fill_synthetic_normal(whole.data_ptr<float>(), whole.numel(), key, 0, 0.02f);
  // Pieces starting at odd and even offsets reproduce the same values.
  at::Tensor pieces = at::empty({100001}, at::kFloat);
  const int64_t cuts[] = {0, 1, 2, 777, 5000, 5001, 99999, 100001};
  for (size_t i = 0; i + 1 < std::size(cuts); ++i) {
    fill_synthetic_normal(pieces.data_ptr<float>() + cuts[i], cuts[i + 1] - cuts[i], key, cuts[i], 0.02f);
  }
  EXPECT_TRUE(at::equal(whole, pieces));
  const int threads = at::get_num_threads();
  at::set_num_threads(threads == 1 ? 2 : 1);
  at::Tensor other = at::empty({100001}, at::kFloat);
  fill_synthetic_normal(other.data_ptr<float>(), other.numel(), key, 0, 0.02f);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(whole, other));
  // Another key gives another stream.
  fill_synthetic_normal(other.data_ptr<float>(), other.numel(), key + 1, 0, 0.02f);
  EXPECT_FALSE(at::equal(whole, other));
}

TEST(SyntheticModel, SameSeed_ByteIdenticalFilesAtAnyChunkSize) {
  testing::TempDir tmp("synth_determinism");
  SynthOptions a = small_options(tmp.path() / "a", DType::kBF16, 5);
  SynthOptions b = small_options(tmp.path() / "b", DType::kBF16, 5);
  b.chunk_elements = 999;  // odd chunks split element pairs and tensors differently
  SynthOptions c = small_options(tmp.path() / "c", DType::kBF16, 6);
  write_synthetic_model(a);
  write_synthetic_model(b);
  write_synthetic_model(c);
  const auto bytes_a = folder_bytes(a.output);
  EXPECT_EQ(bytes_a, folder_bytes(b.output));
  const auto bytes_c = folder_bytes(c.output);
  ASSERT_EQ(bytes_c.count("model.safetensors"), 1u);
  EXPECT_NE(bytes_a.at("model.safetensors"), bytes_c.at("model.safetensors"));
  EXPECT_EQ(bytes_a.at("config.json"), bytes_c.at("config.json"));
}

TEST(SyntheticModel, Bf16_IsTheRoundedFp32Model) {
  testing::TempDir tmp("synth_bf16");
  write_synthetic_model(small_options(tmp.path() / "f32", DType::kF32));
  write_synthetic_model(small_options(tmp.path() / "bf16", DType::kBF16));
  const auto f32 = SafetensorsCheckpoint::open(tmp.path() / "f32");
  const auto bf16 = SafetensorsCheckpoint::open(tmp.path() / "bf16");
  EXPECT_EQ(ModelSpec::open(tmp.path() / "bf16").config.torch_dtype, DType::kBF16);
  for (const std::string& name : f32.names()) {
    const at::Tensor rounded = bf16.load(name);
    ASSERT_EQ(rounded.scalar_type(), at::kBFloat16) << name;
    EXPECT_TRUE(at::equal(f32.load(name).to(at::kBFloat16), rounded)) << name;
  }
}

TEST(SyntheticModel, TrimmedLayers_AreThePrefixOfTheFullModel) {
  testing::TempDir tmp("synth_trim");
  SynthOptions full = small_options(tmp.path() / "full");
  SynthOptions trimmed = small_options(tmp.path() / "trimmed");
  trimmed.config.n_layers = 1;
  write_synthetic_model(full);
  write_synthetic_model(trimmed);
  const ModelSpec spec = ModelSpec::open(trimmed.output);
  EXPECT_EQ(spec.n_layers(), 1);
  const auto a = SafetensorsCheckpoint::open(full.output);
  const auto b = SafetensorsCheckpoint::open(trimmed.output);
  EXPECT_FALSE(b.has("model.layers.1.mlp.up_proj.weight"));
  for (const std::string& name : b.names()) EXPECT_TRUE(at::equal(a.load(name), b.load(name))) << name;
}

TEST(SyntheticModel, SmallShardLimit_WritesShardsAndIndex) {
  testing::TempDir tmp("synth_shards");
  SynthOptions o = small_options(tmp.path() / "model");
  o.max_shard_bytes = 100000;
  const SynthResult result = write_synthetic_model(o);
  EXPECT_GT(result.n_files, 2);
  EXPECT_TRUE(std::filesystem::exists(o.output / "model.safetensors.index.json"));
  EXPECT_FALSE(std::filesystem::exists(o.output / "model.safetensors"));
  const ModelSpec spec = ModelSpec::open(o.output);
  EXPECT_EQ(static_cast<int>(spec.file_names.size()), result.n_files);
  // Sharding changes where tensors live, not what they hold.
  write_synthetic_model(small_options(tmp.path() / "single"));
  const auto sharded = SafetensorsCheckpoint::open(o.output);
  const auto single = SafetensorsCheckpoint::open(tmp.path() / "single");
  for (const std::string& name : single.names()) EXPECT_TRUE(at::equal(sharded.load(name), single.load(name))) << name;
}

TEST(SyntheticModel, TokenizerFrom_CopiesTokenizerFiles) {
  testing::TempDir tmp("synth_tokenizer");
  SynthOptions o = small_options(tmp.path() / "model");
  o.tokenizer_from = kSource / "examples/stories260K";
  write_synthetic_model(o);
  EXPECT_EQ(read_file(o.output / "tokenizer.json"), read_file(o.tokenizer_from / "tokenizer.json"));
  EXPECT_TRUE(std::filesystem::exists(o.output / "tokenizer_config.json"));
  // Weights are never copied from the tokenizer folder.
  EXPECT_NE(read_file(o.output / "model.safetensors"), read_file(o.tokenizer_from / "model.safetensors"));
}

TEST(SyntheticModel, TokenizerFolderWithoutTokenizer_ConfigErrorBeforeWriting) {
  testing::TempDir tmp("synth_bad_tokenizer");
  SynthOptions o = small_options(tmp.path() / "model");
  o.tokenizer_from = tmp.path();
  EXPECT_THROW(write_synthetic_model(o), ConfigError);
  EXPECT_FALSE(std::filesystem::exists(o.output));
  EXPECT_FALSE(std::filesystem::exists(StagedDirectory::staging_path_for(o.output)));
}

TEST(SyntheticModel, ExistingOutput_IoErrorUnlessOverwrite) {
  testing::TempDir tmp("synth_exists");
  SynthOptions o = small_options(tmp.path() / "model");
  write_synthetic_model(o);
  EXPECT_THROW(write_synthetic_model(o), IoError);
  o.overwrite = true;
  o.seed = 1;
  write_synthetic_model(o);
  EXPECT_EQ(ModelSpec::open(o.output).n_layers(), 3);
}

TEST(SyntheticModel, UnknownShape_ConfigErrorListingNames) {
  try {
    synthetic_shape_config("llama-8b");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("llama-8b"), std::string::npos) << message;
    EXPECT_NE(message.find("llama3-8b"), std::string::npos) << message;
  }
}

// Published parameter counts (transformers' num_parameters() of each source checkpoint).
TEST(SyntheticModel, NamedShapes_ValidConfigsWithPublishedParameterCounts) {
  const std::map<std::string, int64_t> published = {
      {"llama-1b", 1100048384LL},   {"llama-3b", 3426473600LL},   {"llama-7b", 6738415616LL},
      {"llama-13b", 13015864320LL}, {"llama-30b", 32528943616LL}, {"llama-70b", 68976648192LL}, {"llama3-8b", 8030261248LL},
      {"llama3-70b", 70553706496LL}, {"mistral-7b", 7241732096LL}, {"qwen2-7b", 7615616512LL},
      {"qwen3-8b", 8190735360LL},    {"phi-3-mini", 3821079552LL},    {"gemma-2-9b", 9241705984LL}, {"gemma-3-12b", 11766034176LL}};
  ASSERT_EQ(synthetic_shape_names().size(), published.size());
  for (const std::string& name : synthetic_shape_names()) {
    SCOPED_TRACE(name);
    const ModelConfig config = synthetic_shape_config(name);
    EXPECT_EQ(ModelConfig::from_json(config.to_json(), name), config);
    EXPECT_EQ(count_parameters(config), published.at(name));
    EXPECT_FALSE(synthetic_shape_source(name).empty());
    // 2:4 and 4:8 patterns need every linear's input size divisible by 8.
    EXPECT_EQ(config.hidden_size % 8, 0);
    EXPECT_EQ(config.intermediate_size % 8, 0);
    const ModelSpec spec = ModelSpec::from_config(config, DType::kBF16);
    EXPECT_EQ(spec.bytes_total(), 2 * published.at(name));
  }
  const ModelConfig llama3 = synthetic_shape_config("llama3-8b");
  EXPECT_EQ(llama3.rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_EQ(llama3.n_kv_heads, 8);
  EXPECT_TRUE(synthetic_shape_config("qwen2-7b").qkv_bias);
  EXPECT_EQ(synthetic_shape_config("mistral-7b").sliding_window, std::optional<int64_t>(4096));
  EXPECT_EQ(synthetic_shape_config("llama-70b").n_kv_heads, 8);
  EXPECT_TRUE(synthetic_shape_config("qwen3-8b").qk_norm);
  EXPECT_TRUE(synthetic_shape_config("phi-3-mini").fused_projections);
  const ModelConfig gemma2 = synthetic_shape_config("gemma-2-9b");
  EXPECT_TRUE(gemma2.tie_word_embeddings && gemma2.sandwich_norms && gemma2.norm_plus_one && gemma2.scale_embeddings);
  EXPECT_EQ(gemma2.attn_logit_softcapping, std::optional<double>(50.0));
  EXPECT_TRUE(gemma2.layer_is_sliding(0));
  EXPECT_FALSE(gemma2.layer_is_sliding(1));
  const ModelConfig gemma3 = synthetic_shape_config("gemma-3-12b");
  EXPECT_TRUE(gemma3.qk_norm);
  EXPECT_FALSE(gemma3.attn_logit_softcapping.has_value());
  EXPECT_EQ(gemma3.local_rope_theta, std::optional<double>(1e4));
  EXPECT_EQ(gemma3.rope_scaling.type, RopeScaling::Type::kLinear);
  for (int64_t l = 0; l < 12; ++l) EXPECT_EQ(gemma3.layer_is_sliding(l), l % 6 != 5) << l;
}

}  // namespace
}  // namespace pipeprune
