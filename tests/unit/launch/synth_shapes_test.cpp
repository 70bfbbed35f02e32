// Every named `synth` shape, trimmed to two decoder layers, is a checkpoint the other commands
// accept: `plan` and `estimate` read it, and `prune` runs end to end on it (Wanda, one tiny
// calibration window) and writes a model at the requested sparsity. The full-size shapes go
// through `estimate --params` (headers only, nothing written).
//
// These are the real widths (a trimmed llama-70b is 4.2 GB on disk and needs ~8 GB of RAM to
// prune; the fourteen trimmed shapes took 23 minutes of one core in all on the 2-core CI machine,
// 2026-12-02), so ctest runs this executable as four gtest shards (tests/CMakeLists.txt).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/io/npy.h"
#include "core/model/model_config.h"
#include "core/model/synthetic_model.h"
#include "support/run_command.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;
using testing::run_pipeprune;

class SynthShape : public ::testing::TestWithParam<std::string> {};

TEST_P(SynthShape, TrimmedToTwoLayers_PlansEstimatesAndPrunes) {
  const std::string& shape = GetParam();
  const std::string dir = testing::fresh_temp_dir("synth_" + shape);
  const ModelConfig full = synthetic_shape_config(shape);
  // Two layers plus the embedding and lm_head in bf16, written twice (synthetic and pruned).
  const int64_t layer_params = 2 * full.hidden_size * (full.n_heads + full.n_kv_heads) * full.head_dim +
                               3 * full.hidden_size * full.intermediate_size;
  const int64_t model_bytes = 2 * (2 * layer_params + 2 * full.vocab_size * full.hidden_size);
  if (static_cast<int64_t>(fs::space(dir).available) < 2 * model_bytes + (int64_t{1} << 30)) {
    GTEST_SKIP() << shape << " needs " << (2 * model_bytes >> 20) << " MiB of free disk in " << dir;
  }

  const std::string model = dir + "/model";
  const auto synth = run_pipeprune({"synth", "--shape", shape, "--layers", "2", "--output", model, "--quiet"});
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  const ModelConfig trimmed = ModelConfig::from_file(fs::path(model) / "config.json");
  EXPECT_EQ(trimmed.n_layers, 2);
  EXPECT_EQ(trimmed.hidden_size, full.hidden_size);
  EXPECT_EQ(trimmed.intermediate_size, full.intermediate_size);
  EXPECT_EQ(trimmed.vocab_size, full.vocab_size);

  const auto plan = run_pipeprune({"plan", "--model", model});
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  EXPECT_NE(plan.out.find("emb+0-1+head"), std::string::npos) << plan.out;

  const auto estimate = run_pipeprune({"estimate", "--model", model, "--nsamples", "1", "--seqlen", "8"});
  ASSERT_EQ(estimate.exit_code, 0) << estimate.err;

  // One window of 8 tokens: ids below every shape's vocabulary, no tokenizer needed.
  const std::string tokens = dir + "/tokens.npy";
  write_npy(tokens, at::arange(8, at::kLong).mul(997).remainder(32000).reshape({1, 8}));
  const std::string pruned = dir + "/pruned";
  const auto prune = run_pipeprune({"prune", "--model", model, "--output", pruned, "--method", "wanda", "--sparsity",
                                    "0.5", "--calib-tokens", tokens, "--nsamples", "1", "--seqlen", "8", "--report",
                                    dir + "/report.json", "--quiet"});
  ASSERT_EQ(prune.exit_code, 0) << prune.err;
  std::ifstream report_file(dir + "/report.json");
  const auto report = nlohmann::json::parse(report_file);
  // Wanda prunes int(cols / 2) per row, and every width here is even: exactly half.
  EXPECT_DOUBLE_EQ(report["overall_sparsity"].get<double>(), 0.5);
  EXPECT_EQ(ModelConfig::from_file(fs::path(pruned) / "config.json").n_layers, 2);
  fs::remove_all(dir);
}

TEST_P(SynthShape, FullSize_EstimateByShapeName) {
  const auto estimate = run_pipeprune({"estimate", "--params", GetParam(), "--world", "8"});
  ASSERT_EQ(estimate.exit_code, 0) << estimate.err;
  const std::string layers = std::to_string(synthetic_shape_config(GetParam()).n_layers) + " layers";
  EXPECT_NE(estimate.out.find(layers), std::string::npos) << estimate.out;
}

INSTANTIATE_TEST_SUITE_P(NamedShapes, SynthShape, ::testing::ValuesIn(synthetic_shape_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace pipeprune
