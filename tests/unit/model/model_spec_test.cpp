#include "core/model/model_spec.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "core/common/error.h"
#include "core/common/log.h"
#include "core/io/safetensors.h"
#include "unit/model/checkpoint_util.h"
#include "unit/model/tiny_model.h"

namespace pipeprune {
namespace {

const std::filesystem::path kSource = PIPEPRUNE_SOURCE_DIR;

// Sum of header byte sizes per prefix, computed from the checkpoint directly.
std::map<std::string, int64_t> bytes_by_prefix(const SafetensorsCheckpoint& checkpoint, int64_t n_layers) {
  std::map<std::string, int64_t> out;
  for (const std::string& name : checkpoint.names()) {
    std::string key = name;
    for (int64_t l = 0; l < n_layers; ++l) {
      const std::string prefix = "model.layers." + std::to_string(l) + ".";
      if (name.rfind(prefix, 0) == 0) key = prefix;
    }
    out[key] += checkpoint.info(name).n_bytes;
  }
  return out;
}

TEST(ModelSpec, Stories260K_BytesMatchHeaders) {
  const std::filesystem::path dir = kSource / "examples/stories260K";
  const ModelSpec spec = ModelSpec::open(dir);
  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(dir);
  const auto expected = bytes_by_prefix(checkpoint, 5);
  ASSERT_EQ(spec.n_layers(), 5);
  for (int64_t l = 0; l < 5; ++l) {
    EXPECT_EQ(spec.bytes_layer(l), expected.at("model.layers." + std::to_string(l) + ".")) << l;
  }
  // hidden 64, q 64, kv 32, intermediate 172: 2*64 + 64*64*2 + 32*64*2 + 3*172*64 floats.
  EXPECT_EQ(spec.bytes_layer(0), (2 * 64 + 2 * 64 * 64 + 2 * 32 * 64 + 3 * 172 * 64) * 4);
  EXPECT_EQ(spec.bytes_layers(), 5 * spec.bytes_layer(0));
  EXPECT_EQ(spec.bytes_max_layer(), spec.bytes_layer(0));
  EXPECT_EQ(spec.bytes_embedding(), expected.at("model.embed_tokens.weight"));
  // Tied: the last stage holds the embedding matrix as lm_head.
  EXPECT_EQ(spec.bytes_head(), expected.at("model.norm.weight") + spec.bytes_embedding());
  EXPECT_EQ(spec.bytes_total(), checkpoint.total_bytes());
  EXPECT_EQ(spec.layer_dtype(), DType::kF32);
  EXPECT_TRUE(spec.ignored_tensors.empty());
  EXPECT_EQ(spec.tensor_specs().size(), checkpoint.names().size());
  EXPECT_EQ(spec.file_names, std::vector<std::string>{"model.safetensors"});
}

TEST(ModelSpec, FromConfig_SameBytesAsCheckpoint) {
  const ModelSpec opened = ModelSpec::open(kSource / "examples/stories260K");
  const ModelSpec estimated = ModelSpec::from_config(opened.config, DType::kF32);
  EXPECT_EQ(estimated.bytes_total(), opened.bytes_total());
  EXPECT_EQ(estimated.bytes_layer(3), opened.bytes_layer(3));
  EXPECT_EQ(estimated.bytes_head(), opened.bytes_head());
  EXPECT_TRUE(estimated.file_of().empty());
  EXPECT_EQ(ModelSpec::from_config(opened.config, DType::kBF16).bytes_total() * 2, opened.bytes_total());
}

TEST(ModelSpec, ShardedBf16_FilesAndDtype) {
  const std::filesystem::path dir = kSource / "tests/fixtures/stories260K-bf16-sharded";
  const ModelSpec spec = ModelSpec::open(dir);
  EXPECT_EQ(spec.layer_dtype(), DType::kBF16);
  EXPECT_EQ(spec.file_names.size(), 2u);
  EXPECT_EQ(spec.bytes_total() * 2, ModelSpec::open(kSource / "examples/stories260K").bytes_total());
  const auto file_of = spec.file_of();
  EXPECT_EQ(file_of.size(), spec.tensor_specs().size());
  EXPECT_EQ(file_of.at("model.embed_tokens.weight"), "model-00001-of-00002.safetensors");
  // Layer 2 straddles the shards on purpose: both files hold some of it.
  std::set<std::string> layer2_files;
  for (const SpecTensor& t : spec.layers[2]) layer2_files.insert(t.file);
  EXPECT_EQ(layer2_files.size(), 2u);
  // The output layout can follow the input's sharding.
  const ShardLayout layout = plan_layout_like(spec.tensor_specs(), file_of, spec.file_names);
  EXPECT_EQ(layout.files.size(), 2u);
}

// Buffers the forward does not use pass: an inv_freq or an empty tensor inside a layer
// silently, anything outside the layers with a warning.
TEST(ModelSpec, UnusedBuffers_IgnoredAndOutsideLayersWarned) {
  const ModelConfig config = testing::tiny_config("llama", 32, 4, 2, 8);
  const testing::TinyModel m = testing::make_tiny_model(config, 1);
  const testing::TempDir dir("spec_extra");
  auto tensors = testing::tiny_named_tensors(m);
  tensors.emplace_back("model.layers.0.self_attn.rotary_emb.inv_freq", at::ones({4}));
  tensors.emplace_back("model.layers.1.mlp.down_proj.bias", at::ones({0}));
  tensors.emplace_back("model.vision_projection.weight", at::ones({3, 2}));
  testing::write_checkpoint(dir.path(), config, tensors);
  std::vector<std::string> warnings;
  const log::Sink previous = log::set_sink([&](log::Level level, const std::string& line) {
    if (level >= log::Level::kWarn) warnings.push_back(line);
  });
  const ModelSpec spec = ModelSpec::open(dir.path());
  log::set_sink(previous);
  EXPECT_EQ(spec.ignored_tensors.size(), 3u);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("model.vision_projection.weight"), std::string::npos) << warnings[0];
  EXPECT_EQ(spec.tensor_specs().size(), tensors.size() - 3);
}

template <typename F>
void expect_format_error(F f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "no FormatError";
  } catch (const FormatError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_NE(message.find(part), std::string::npos) << part << " not in: " << message;
  }
}

// A weight inside a decoder layer that the config does not use (a bias without attention_bias,
// qwen3's q_norm under a qwen2 config.json, gemma's feed-forward norms under llama) would be
// silently dropped from the forward: a FormatError naming it.
TEST(ModelSpec, UnknownWeightInsideLayer_FormatErrorNamingIt) {
  const ModelConfig config = testing::tiny_config("llama", 32, 4, 2, 8);
  const testing::TinyModel m = testing::make_tiny_model(config, 1);
  for (const auto& [name, shape] : std::vector<std::pair<std::string, std::vector<int64_t>>>{
           {"model.layers.0.self_attn.q_proj.bias", {32}},
           {"model.layers.1.self_attn.q_norm.weight", {8}},
           {"model.layers.0.pre_feedforward_layernorm.weight", {32}}}) {
    SCOPED_TRACE(name);
    const testing::TempDir dir("spec_unknown");
    auto tensors = testing::tiny_named_tensors(m);
    tensors.emplace_back(name, at::ones(shape));
    testing::write_checkpoint(dir.path(), config, tensors);
    expect_format_error([&] { ModelSpec::open(dir.path()); },
                        "tensor " + name + " is inside a decoder layer but a llama model with this config.json has "
                                           "no such weight");
  }
}

TEST(ModelSpec, WrongShapeOrMissing_OneLineFormatErrorNamingTensor) {
  const ModelConfig config = testing::tiny_config_variants()[1].second;  // qwen2, biases
  const testing::TinyModel m = testing::make_tiny_model(config, 2);
  {
    const testing::TempDir dir("spec_shape");
    const std::string name = "model.layers.1.mlp.down_proj.weight";
    testing::write_checkpoint(dir.path(), config,
                              testing::with_tensor(testing::tiny_named_tensors(m), name, at::zeros({32, 8})));
    expect_format_error([&] { ModelSpec::open(dir.path()); },
                        name + " has shape [32, 8]; config.json implies [32, " +
                            std::to_string(config.intermediate_size) + "]");
  }
  {
    const testing::TempDir dir("spec_missing");
    const std::string name = "model.layers.0.self_attn.v_proj.bias";
    testing::write_checkpoint(dir.path(), config, testing::with_tensor(testing::tiny_named_tensors(m), name, at::Tensor()));
    expect_format_error([&] { ModelSpec::open(dir.path()); }, "tensor " + name + " is missing");
  }
}

}  // namespace
}  // namespace pipeprune
