#include "core/model/layer_weights.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "core/common/error.h"
#include "core/io/safetensors.h"
#include "core/model/decoder.h"
#include "unit/model/checkpoint_util.h"
#include "unit/model/tiny_model.h"

namespace pipeprune {
namespace {

const c10::Device kCpu(c10::kCPU);

ModelConfig biased_config() { return testing::tiny_config_variants()[2].second; }  // all biases, head_dim 16

TEST(LayerWeights, NamesAndShapes_FollowHuggingFace) {
  EXPECT_STREQ(linear_name(LinearKind::kQ), "self_attn.q_proj");
  EXPECT_STREQ(linear_name(LinearKind::kO), "self_attn.o_proj");
  EXPECT_STREQ(linear_name(LinearKind::kDown), "mlp.down_proj");
  EXPECT_STREQ(linear_short_name(LinearKind::kGate), "gate");
  EXPECT_EQ(layer_tensor_name(3, "mlp.up_proj.weight"), "model.layers.3.mlp.up_proj.weight");

  const ModelConfig c = testing::tiny_config_variants()[3].second;  // hidden 64, 8 heads of 16, 2 KV heads
  EXPECT_EQ(linear_shape(c, LinearKind::kQ), (std::array<int64_t, 2>{128, 64}));
  EXPECT_EQ(linear_shape(c, LinearKind::kK), (std::array<int64_t, 2>{32, 64}));
  EXPECT_EQ(linear_shape(c, LinearKind::kV), (std::array<int64_t, 2>{32, 64}));
  EXPECT_EQ(linear_shape(c, LinearKind::kO), (std::array<int64_t, 2>{64, 128}));
  EXPECT_EQ(linear_shape(c, LinearKind::kGate), (std::array<int64_t, 2>{c.intermediate_size, 64}));
  EXPECT_EQ(linear_shape(c, LinearKind::kDown), (std::array<int64_t, 2>{64, c.intermediate_size}));
}

TEST(LayerWeights, Biases_PerModelType) {
  const ModelConfig qwen = testing::tiny_config_variants()[1].second;
  for (LinearKind kind : kAllLinears) {
    const bool qkv = kind == LinearKind::kQ || kind == LinearKind::kK || kind == LinearKind::kV;
    EXPECT_EQ(linear_has_bias(qwen, kind), qkv) << linear_short_name(kind);
    EXPECT_TRUE(linear_has_bias(biased_config(), kind)) << linear_short_name(kind);
  }
  // 2 norms + 7 weights + 3 biases for qwen2; + 7 biases with every bias.
  EXPECT_EQ(expected_layer_tensors(qwen, 0).size(), 12u);
  EXPECT_EQ(expected_layer_tensors(biased_config(), 1).size(), 16u);
  EXPECT_EQ(expected_head_tensors(qwen).size(), 1u);  // tied: no lm_head.weight
  EXPECT_EQ(expected_head_tensors(biased_config()).size(), 2u);
}

TEST(LayerWeights, NamedTensorsAndBytes_MatchExpectedTensors) {
  const testing::TinyModel m = testing::make_tiny_model(biased_config(), 1);
  const DecoderLayerWeights& layer = m.layers[1];
  const auto named = layer.named_tensors(m.config);
  const auto expected = expected_layer_tensors(m.config, 1);
  ASSERT_EQ(named.size(), expected.size());
  int64_t bytes = 0;
  for (size_t i = 0; i < named.size(); ++i) {
    EXPECT_EQ(named[i].first, expected[i].name);
    EXPECT_EQ(named[i].second.sizes().vec(), expected[i].shape) << expected[i].name;
    bytes += named[i].second.numel() * 4;
  }
  EXPECT_EQ(layer.n_bytes(), bytes);
  EXPECT_EQ(to_compute(layer, kCpu, at::kBFloat16).n_bytes(), bytes / 2);
  EXPECT_EQ(m.embedding.n_bytes(), m.config.vocab_size * m.config.hidden_size * 4);
  EXPECT_EQ(m.head.n_bytes(), (m.config.vocab_size + 1) * m.config.hidden_size * 4);
}

TEST(LayerWeights, ToCompute_CopiesNeverAliases) {
  const testing::TinyModel m = testing::make_tiny_model(biased_config(), 2);
  DecoderLayerWeights copy = to_compute(m.layers[0], kCpu, at::kFloat);
  EXPECT_EQ(copy.layer, 0);
  EXPECT_TRUE(at::equal(copy[LinearKind::kQ].weight, m.layers[0][LinearKind::kQ].weight));
  copy[LinearKind::kQ].weight.zero_();
  copy[LinearKind::kQ].bias.zero_();
  EXPECT_NE(m.layers[0][LinearKind::kQ].weight.abs().sum().item<double>(), 0.0);
  EXPECT_NE(m.layers[0][LinearKind::kQ].bias.abs().sum().item<double>(), 0.0);
  const DecoderLayerWeights half = to_compute(m.layers[0], kCpu, at::kBFloat16);
  for (const auto& [name, t] : half.named_tensors(m.config)) EXPECT_EQ(t.scalar_type(), at::kBFloat16) << name;
  const ModelConfig no_bias = testing::tiny_config("llama", 32, 4, 2, 8);
  EXPECT_FALSE(to_compute(testing::make_tiny_model(no_bias, 3).layers[0], kCpu, at::kFloat)[LinearKind::kO].bias.defined());
}

TEST(LayerWeights, LoadFromCheckpoint_EqualsWrittenWeights) {
  for (const auto& [label, config] : testing::tiny_config_variants()) {
    const testing::TinyModel m = testing::make_tiny_model(config, 4);
    const testing::TempDir dir("load_" + label);
    testing::write_checkpoint(dir.path(), config, testing::tiny_named_tensors(m), DType::kF32, 20000);
    const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(dir.path());
    ASSERT_TRUE(checkpoint.sharded()) << label;  // 20 kB shards: a few files
    for (int64_t l = 0; l < config.n_layers; ++l) {
      const DecoderLayerWeights loaded = load_decoder_layer(checkpoint, config, l);
      EXPECT_EQ(loaded.layer, l);
      const auto expected = m.layers[l].named_tensors(config);
      const auto got = loaded.named_tensors(config);
      ASSERT_EQ(got.size(), expected.size()) << label;
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i].first, expected[i].first);
        EXPECT_TRUE(at::equal(got[i].second, expected[i].second)) << got[i].first;
      }
    }
    EXPECT_TRUE(at::equal(load_embedding(checkpoint, config).embed_tokens, m.embedding.embed_tokens));
    const HeadWeights head = load_head(checkpoint, config);
    EXPECT_TRUE(at::equal(head.norm, m.head.norm));
    EXPECT_TRUE(at::equal(head.lm_head, m.head.lm_head)) << label;  // tied: the embedding
  }
}

TEST(LayerWeights, LoadBf16Checkpoint_KeepsStoredDtype) {
  const ModelConfig config = testing::tiny_config_variants()[0].second;
  const testing::TinyModel m = testing::make_tiny_model(config, 5);
  const testing::TempDir dir("bf16");
  testing::write_checkpoint(dir.path(), config, testing::tiny_named_tensors(m), DType::kBF16);
  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(dir.path());
  const DecoderLayerWeights loaded = load_decoder_layer(checkpoint, config, 1);
  for (const auto& [name, t] : loaded.named_tensors(config)) EXPECT_EQ(t.scalar_type(), at::kBFloat16) << name;
  EXPECT_TRUE(at::equal(loaded[LinearKind::kUp].weight, m.layers[1][LinearKind::kUp].weight.to(at::kBFloat16)));
}

// Expects FormatError whose one-line message holds every part.
template <typename F>
void expect_format_error(F f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no FormatError";
  } catch (const FormatError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    for (const std::string& part : parts) EXPECT_NE(message.find(part), std::string::npos) << part << " not in: " << message;
  }
}

TEST(LayerWeights, WrongShape_FormatErrorNamingTensorAndShapes) {
  const ModelConfig config = testing::tiny_config("llama", 32, 4, 2, 8);
  const testing::TinyModel m = testing::make_tiny_model(config, 6);
  const testing::TempDir dir("wrong_shape");
  const std::string name = "model.layers.1.self_attn.q_proj.weight";
  testing::write_checkpoint(dir.path(), config,
                            testing::with_tensor(testing::tiny_named_tensors(m), name, at::zeros({32, 16})));
  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(dir.path());
  EXPECT_NO_THROW(load_decoder_layer(checkpoint, config, 0));
  expect_format_error([&] { load_decoder_layer(checkpoint, config, 1); },
                      {dir.path().string(), name + " has shape [32, 16]; config.json implies [32, 32]"});
}

TEST(LayerWeights, MissingTensor_FormatErrorNamingTensor) {
  const ModelConfig config = testing::tiny_config_variants()[0].second;  // untied
  const testing::TinyModel m = testing::make_tiny_model(config, 7);
  const testing::TempDir dir("missing");
  testing::write_checkpoint(dir.path(), config,
                            testing::with_tensor(testing::tiny_named_tensors(m), "lm_head.weight", at::Tensor()));
  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(dir.path());
  expect_format_error([&] { load_head(checkpoint, config); }, {"tensor lm_head.weight is missing", "[40, 32]"});
  // The same checkpoint read as tied takes the embedding as lm_head.
  ModelConfig tied = config;
  tied.tie_word_embeddings = true;
  EXPECT_TRUE(at::equal(load_head(checkpoint, tied).lm_head, m.embedding.embed_tokens));
}

TEST(LayerWeights, BiasMissingForQwen2_FormatError) {
  const ModelConfig config = testing::tiny_config_variants()[1].second;
  const testing::TinyModel m = testing::make_tiny_model(config, 8);
  const testing::TempDir dir("no_bias");
  const std::string name = "model.layers.0.self_attn.k_proj.bias";
  testing::write_checkpoint(dir.path(), config, testing::with_tensor(testing::tiny_named_tensors(m), name, at::Tensor()));
  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(dir.path());
  expect_format_error([&] { load_decoder_layer(checkpoint, config, 0); }, {name + " is missing"});
}

TEST(LayerWeights, LoadedModelForward_EqualsInMemoryForward) {
  const ModelConfig config = testing::tiny_config_variants()[3].second;
  const testing::TinyModel m = testing::make_tiny_model(config, 9);
  const testing::TempDir dir("forward");
  testing::write_checkpoint(dir.path(), config, testing::tiny_named_tensors(m));
  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(dir.path());
  const ModelConfig reread = ModelConfig::from_file(dir.path());
  ASSERT_TRUE(reread == config);
  const at::Tensor tokens = testing::random_tokens(10, 1, 5, config.vocab_size);
  const RopeTables rope = make_rope_tables(reread, 5, kCpu);
  at::Tensor a = embed_tokens(m.embedding, tokens), b = embed_tokens(load_embedding(checkpoint, reread), tokens);
  for (int64_t l = 0; l < config.n_layers; ++l) {
    a = decoder_layer_forward(m.layers[l], config, rope, a);
    b = decoder_layer_forward(load_decoder_layer(checkpoint, reread, l), reread, rope, b);
  }
  EXPECT_TRUE(at::equal(head_forward(m.head, config, a), head_forward(load_head(checkpoint, reread), reread, b)));
}

}  // namespace
}  // namespace pipeprune
