// The real trained stories260K model (examples/stories260K) against its recorded reference:
// last-position logits of a float64 HF-semantics forward, and llama2.c's greedy generation.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "core/common/files.h"
#include "core/io/safetensors.h"
#include "core/model/decoder.h"
#include "core/model/layer_weights.h"
#include "core/model/model_config.h"

namespace pipeprune {
namespace {

const c10::Device kCpu(c10::kCPU);
const std::filesystem::path kSource = PIPEPRUNE_SOURCE_DIR;

struct LoadedModel {
  ModelConfig config;
  EmbeddingWeights embedding;
  std::vector<DecoderLayerWeights> layers;
  HeadWeights head;
};

// Loads every part and upcasts to fp32 for compute, as the pipeline does.
LoadedModel load_model(const std::filesystem::path& dir) {
  LoadedModel m;
  m.config = ModelConfig::from_file(dir);
  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(dir);
  m.embedding = to_compute(load_embedding(checkpoint, m.config), kCpu, at::kFloat);
  for (int64_t l = 0; l < m.config.n_layers; ++l) {
    m.layers.push_back(to_compute(load_decoder_layer(checkpoint, m.config, l), kCpu, at::kFloat));
  }
  m.head = to_compute(load_head(checkpoint, m.config), kCpu, at::kFloat);
  return m;
}

at::Tensor forward(const LoadedModel& m, const std::vector<int64_t>& ids) {
  const at::Tensor tokens = at::tensor(ids, at::kLong).view({1, -1});
  const RopeTables rope = make_rope_tables(m.config, tokens.size(1), kCpu);
  at::Tensor h = embed_tokens(m.embedding, tokens);
  for (const DecoderLayerWeights& layer : m.layers) h = decoder_layer_forward(layer, m.config, rope, h);
  return head_forward(m.head, m.config, h);
}

// Greedy decoding from `prompt` with KV caches, `steps` new tokens.
std::vector<int64_t> greedy(const LoadedModel& m, std::vector<int64_t> ids, int64_t steps) {
  const RopeTables rope = make_rope_tables(m.config, int64_t(ids.size()) + steps, kCpu);
  std::vector<LayerKVCache> caches(m.layers.size());
  at::Tensor next = at::tensor(ids, at::kLong).view({1, -1});
  int64_t position = 0;
  for (int64_t step = 0; step < steps; ++step) {
    at::Tensor h = embed_tokens(m.embedding, next);
    for (size_t l = 0; l < m.layers.size(); ++l) {
      h = decoder_layer_forward(m.layers[l], m.config, rope, h, position, &caches[l]);
    }
    position += next.size(1);
    const at::Tensor logits = head_forward(m.head, m.config, h.narrow(1, h.size(1) - 1, 1));
    const int64_t token = logits.argmax(-1).item<int64_t>();
    ids.push_back(token);
    next = at::tensor(std::vector<int64_t>{token}, at::kLong).view({1, 1});
  }
  return ids;
}

const nlohmann::json& reference() {
  static const nlohmann::json json = read_json_file(kSource / "examples/stories260K/reference.json");
  return json;
}

TEST(Stories260K, LastPositionLogits_MatchFloat64Reference) {
  const LoadedModel m = load_model(kSource / "examples/stories260K");
  const auto& check = reference().at("logits_check");
  const std::vector<int64_t> ids = check.at("input_ids").get<std::vector<int64_t>>();
  const std::vector<double> expected = check.at("last_position_logits").get<std::vector<double>>();
  ASSERT_EQ(ids, (std::vector<int64_t>{1, 403, 407, 261, 378}));
  const at::Tensor logits = forward(m, ids).select(1, int64_t(ids.size()) - 1)[0].to(at::kDouble);
  ASSERT_EQ(logits.numel(), int64_t(expected.size()));
  const double error = (logits - at::tensor(expected, at::kDouble)).abs().max().item<double>();
  RecordProperty("max_abs_error", std::to_string(error));
  EXPECT_LT(error, 1e-4);
}

TEST(Stories260K, GreedyGeneration_MatchesLlama2c) {
  const LoadedModel m = load_model(kSource / "examples/stories260K");
  const std::vector<int64_t> expected = reference().at("expected_token_ids").get<std::vector<int64_t>>();
  ASSERT_EQ(expected.size(), 257u);  // BOS + 256 steps
  const std::vector<int64_t> got = greedy(m, {1}, 256);
  EXPECT_EQ(got, expected);
}

TEST(Stories260K, Bf16ShardedCheckpoint_CloseToFp32) {
  const std::filesystem::path dir = kSource / "tests/fixtures/stories260K-bf16-sharded";
  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(dir);
  ASSERT_TRUE(checkpoint.sharded());
  const LoadedModel bf16 = load_model(dir);
  const LoadedModel fp32 = load_model(kSource / "examples/stories260K");
  const std::vector<int64_t> ids = reference().at("logits_check").at("input_ids").get<std::vector<int64_t>>();
  const at::Tensor a = forward(bf16, ids), b = forward(fp32, ids);
  const double scale = b.abs().max().item<double>();
  const double error = (a - b).abs().max().item<double>() / scale;
  RecordProperty("bf16_vs_fp32_relative_error", std::to_string(error));
  EXPECT_LT(error, 2e-2);  // weights rounded to bf16 (8 mantissa bits)
  EXPECT_GT(error, 1e-6);  // but not the fp32 weights
  // The fixture's note: greedy text matches the fp32 model for the first 186 tokens.
  const std::vector<int64_t> expected = reference().at("expected_token_ids").get<std::vector<int64_t>>();
  const std::vector<int64_t> got = greedy(bf16, {1}, 200);
  const size_t first_diff = std::mismatch(got.begin(), got.end(), expected.begin()).first - got.begin();
  // The fixture's note counts BOS among the 186 tokens; the bf16 weights then drift (at 186
  // here, as in the fixture's own run), which also shows they are not the fp32 weights.
  EXPECT_GE(first_diff, 186u);
  EXPECT_LT(first_diff, got.size());
}

}  // namespace
}  // namespace pipeprune
