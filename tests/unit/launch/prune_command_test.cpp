// `pipeprune prune` end to end on the real stories260K model: quality ordering of the methods,
// the saved model (format, reload, reported sparsity), determinism, config files and aliases.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include "core/io/safetensors.h"
#include "core/io/safetensors_writer.h"
#include "core/model/layer_weights.h"
#include "core/model/model_config.h"
#include "support/run_command.h"
#include "unit/io/io_test_util.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;
using testing::run_pipeprune;

const std::string& kSource = testing::kSourceDir;
const std::string& kModel = testing::kDemoModel;
const std::string& kText = testing::kDemoText;

double perplexity_of(const std::string& model) {
  const auto result = run_pipeprune({"eval", "--model", model, "--data", kText, "--seqlen", "256", "--max-chunks", "32"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  std::smatch match;
  if (!std::regex_search(result.out, match, std::regex("perplexity ([0-9.]+)"))) return -1;
  return std::stod(match[1]);
}

std::string prune(const std::string& method, const std::string& pattern, const std::string& out_dir,
                  std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"prune", "--model", kModel, "--output", out_dir, "--method", method,
                                "--sparsity", "0.5", "--pattern", pattern, "--calib-data", kText,
                                "--nsamples", "32", "--seqlen", "256", "--quiet"};
  args.insert(args.end(), extra.begin(), extra.end());
  const auto result = run_pipeprune(args);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return out_dir;
}

// The demo model with a uniformly random 50% of every linear's weights zeroed (per matrix, the
// same count as unstructured pruning), saved with the project's writer.
std::string random_mask_model(const std::string& dir, bool two_four) {
  const auto checkpoint = SafetensorsCheckpoint::open(kModel);
  const auto config = ModelConfig::from_file(fs::path(kModel) / "config.json");
  std::vector<TensorSpec> specs;
  for (const auto& name : checkpoint.names()) {
    const auto& info = checkpoint.info(name);
    specs.push_back({name, info.dtype, info.shape});
  }
  fs::create_directories(dir);
  ShardWriter writer(dir, plan_layout_by_size(specs, int64_t{1} << 40));
  writer.create_files();
  at::manual_seed(1234);
  for (const auto& name : checkpoint.names()) {
    at::Tensor tensor = checkpoint.load(name);
    const bool linear = name.find("_proj.weight") != std::string::npos;
    if (linear) {
      at::Tensor noise = at::rand(tensor.sizes());
      if (two_four) {
        // Two random positions of every group of four.
        noise = noise.reshape({-1, 4});
        const at::Tensor drop = std::get<1>(noise.topk(2, 1, /*largest=*/false));
        at::Tensor mask = at::zeros_like(noise, at::kBool).scatter_(1, drop, true);
        tensor = tensor.masked_fill(mask.reshape(tensor.sizes()), 0);
      } else {
        const at::Tensor threshold = std::get<0>(noise.flatten().kthvalue(noise.numel() / 2));
        tensor = tensor.masked_fill(noise.le(threshold), 0);
      }
    }
    writer.write(name, tensor);
  }
  writer.finish();
  for (const char* side : {"config.json", "tokenizer.json", "tokenizer_config.json"}) {
    fs::copy_file(fs::path(kModel) / side, fs::path(dir) / side);
  }
  return dir;
}

class PruneQuality : public ::testing::TestWithParam<std::string> {};

TEST_P(PruneQuality, DenseBelowSparseGptAndWandaBelowMagnitudeFarBelowRandom) {
  const std::string pattern = GetParam();
  const std::string root = testing::fresh_temp_dir("quality_" + std::to_string(pattern.size()));
  const double dense = perplexity_of(kModel);
  const double sparsegpt = perplexity_of(prune("sparsegpt", pattern, root + "/sparsegpt"));
  const double wanda = perplexity_of(prune("wanda", pattern, root + "/wanda"));
  const double magnitude = perplexity_of(prune("magnitude", pattern, root + "/magnitude"));
  const double random = perplexity_of(random_mask_model(root + "/random", pattern == "2:4"));
  std::printf("pattern %s: dense %.4f sparsegpt %.4f wanda %.4f magnitude %.4f random %.4f\n", pattern.c_str(),
              dense, sparsegpt, wanda, magnitude, random);
  EXPECT_LT(dense, sparsegpt);
  EXPECT_LT(dense, wanda);
  EXPECT_LT(sparsegpt, magnitude);
  EXPECT_LT(wanda, magnitude);
  // "Far below": every method at most half the random mask's perplexity.
  for (double method : {sparsegpt, wanda, magnitude}) EXPECT_LT(2 * method, random);
}

INSTANTIATE_TEST_SUITE_P(Patterns, PruneQuality, ::testing::Values("unstructured", "2:4"));

TEST(PruneCommand, SavedModelReloadsWithReportedSparsityAndStandardFormat) {
  const std::string root = testing::fresh_temp_dir("reload");
  const std::string out = prune("wanda", "unstructured", root + "/model", {"--report", root + "/report.json"});
  std::ifstream in(root + "/report.json");
  const auto report = nlohmann::json::parse(in);
  EXPECT_EQ(report["method"], "wanda");
  EXPECT_EQ(report["nsamples"], 32);
  const auto checkpoint = SafetensorsCheckpoint::open(out);
  const auto config = ModelConfig::from_file(fs::path(out) / "config.json");
  ASSERT_EQ(report["layers"].size(), static_cast<size_t>(config.n_layers));
  for (const auto& layer : report["layers"]) {
    const auto weights = load_decoder_layer(checkpoint, config, layer["layer"].get<int64_t>());
    for (LinearKind kind : kAllLinears) {
      const auto& reported = layer["linears"][linear_short_name(kind)];
      const at::Tensor w = weights[kind].weight;
      EXPECT_EQ(w.eq(0).sum().item<int64_t>(), reported["zeros"].get<int64_t>());
      // Wanda unstructured: exactly int(cols * 0.5) per row.
      EXPECT_TRUE(w.eq(0).sum(1).eq(w.size(1) / 2).all().item<bool>()) << linear_name(kind);
    }
  }
  EXPECT_NEAR(report["overall_sparsity"].get<double>(), 0.5, 1e-3);
  // Independent parser: header JSON, offsets and dtypes as the format defines them; the
  // untouched tensors are the input's bytes.
  const auto parsed = testing::mini_read(fs::path(out) / "model.safetensors");
  const auto original = testing::mini_read(fs::path(kModel) / "model.safetensors");
  ASSERT_EQ(parsed.size(), original.size());
  for (const auto& [name, tensor] : original) {
    ASSERT_EQ(parsed.count(name), 1u) << name;
    EXPECT_EQ(parsed.at(name).dtype, tensor.dtype);
    EXPECT_EQ(parsed.at(name).shape, tensor.shape);
    if (name.find("_proj.") == std::string::npos) EXPECT_EQ(parsed.at(name).bytes, tensor.bytes) << name;
  }
  for (const char* side : {"config.json", "tokenizer.json", "tokenizer_config.json"}) {
    EXPECT_EQ(testing::read_bytes(fs::path(out) / side), testing::read_bytes(fs::path(kModel) / side));
  }
}

TEST(PruneCommand, Bf16ShardedInput_KeepsDtypeAndSharding) {
  const std::string root = testing::fresh_temp_dir("bf16");
  const std::string input = kSource + "/tests/fixtures/stories260K-bf16-sharded";
  const auto result = run_pipeprune({"prune", "--model", input, "--output", root + "/out", "--method", "sparsegpt",
                                     "--calib-data", kText, "--nsamples", "8", "--seqlen", "128", "--quiet"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(testing::read_bytes(root + "/out/model.safetensors.index.json"),
            testing::read_bytes(input + "/model.safetensors.index.json"));
  const auto pruned = SafetensorsCheckpoint::open(root + "/out");
  const auto dense = SafetensorsCheckpoint::open(input);
  EXPECT_EQ(pruned.file_names(), dense.file_names());
  for (const auto& name : dense.names()) {
    EXPECT_EQ(pruned.info(name).dtype, DType::kBF16) << name;
    EXPECT_EQ(pruned.info(name).file_index, dense.info(name).file_index) << name;
  }
}

TEST(PruneCommand, SameInputsAndSeed_ByteIdenticalFiles) {
  const std::string root = testing::fresh_temp_dir("determinism");
  for (const char* method : {"wanda", "sparsegpt"}) {
    const std::string a = prune(method, "unstructured", root + "/a_" + method, {"--seed", "5"});
    const std::string b = prune(method, "unstructured", root + "/b_" + method, {"--seed", "5"});
    const std::string c = prune(method, "unstructured", root + "/c_" + method, {"--seed", "6"});
    EXPECT_EQ(testing::read_bytes(a + "/model.safetensors"), testing::read_bytes(b + "/model.safetensors")) << method;
    EXPECT_NE(testing::read_bytes(a + "/model.safetensors"), testing::read_bytes(c + "/model.safetensors")) << method;
  }
}

TEST(PruneCommand, TomlConfigAndWandaAliases_SameResultAsFlags) {
  const std::string root = testing::fresh_temp_dir("config");
  const std::string flags = prune("wanda", "2:4", root + "/flags", {"--seed", "3"});
  std::ofstream(root + "/prune.toml") << "method = \"wanda\"\npattern = \"2:4\"\nnsamples = 32\nseqlen = 256\nseed = 3\n"
                                      << "calib-data = \"" << kText << "\"\n";
  auto result = run_pipeprune({"prune", "--config", root + "/prune.toml", "--model", kModel, "--output",
                               root + "/toml", "--quiet"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  result = run_pipeprune({"prune", "--model", kModel, "--save_model", root + "/aliases", "--prune_method", "wanda",
                          "--sparsity_ratio", "0.5", "--sparsity_type", "2:4", "--nsamples", "32", "--seed", "3",
                          "--seqlen", "256", "--calib-data", kText, "--quiet"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::string expected = testing::read_bytes(flags + "/model.safetensors");
  EXPECT_EQ(testing::read_bytes(root + "/toml/model.safetensors"), expected);
  EXPECT_EQ(testing::read_bytes(root + "/aliases/model.safetensors"), expected);
}

TEST(PruneCommand, CalibTokensNpy_SameAsTheWindowsDrawnFromText) {
  // A run on explicit windows equals a run whose windows were drawn from text, when the windows
  // are the same: checked by writing a report-free .npy of a text run's windows by hand.
  const std::string root = testing::fresh_temp_dir("npy");
  const at::Tensor windows = at::randint(3, 512, {4, 64}, at::kLong);
  {
    std::ofstream npy(root + "/tokens.npy", std::ios::binary);
    std::string header = "{'descr': '<i8', 'fortran_order': False, 'shape': (4, 64), }";
    while ((10 + header.size() + 1) % 64 != 0) header += ' ';
    header += '\n';
    const uint16_t length = static_cast<uint16_t>(header.size());
    npy << "\x93NUMPY" << '\x01' << '\x00';
    npy.write(reinterpret_cast<const char*>(&length), 2);
    npy << header;
    npy.write(reinterpret_cast<const char*>(windows.data_ptr<int64_t>()), 4 * 64 * 8);
  }
  auto run = [&](const std::string& out) {
    return run_pipeprune({"prune", "--model", kModel, "--output", root + "/" + out, "--method", "sparsegpt",
                          "--calib-tokens", root + "/tokens.npy", "--quiet"});
  };
  const auto first = run("a");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  ASSERT_EQ(run("b").exit_code, 0);
  EXPECT_EQ(testing::read_bytes(root + "/a/model.safetensors"), testing::read_bytes(root + "/b/model.safetensors"));
  // A synthetic model has no tokenizer: explicit windows are all it needs.
  const auto synth = run_pipeprune({"synth", "--config", kModel + "/config.json", "--output", root + "/synth",
                                    "--dtype", "bf16", "--quiet"});
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  ASSERT_FALSE(fs::exists(root + "/synth/tokenizer.json"));
  const auto synthetic = run_pipeprune({"prune", "--model", root + "/synth", "--output", root + "/synth_pruned",
                                        "--method", "wanda", "--calib-tokens", root + "/tokens.npy", "--quiet"});
  EXPECT_EQ(synthetic.exit_code, 0) << synthetic.err;
  const auto mismatch = run_pipeprune({"prune", "--model", kModel, "--output", root + "/c", "--method", "wanda",
                                       "--calib-tokens", root + "/tokens.npy", "--nsamples", "8", "--quiet"});
  EXPECT_NE(mismatch.exit_code, 0);
  EXPECT_NE(mismatch.err.find("--nsamples"), std::string::npos) << mismatch.err;
}

}  // namespace
}  // namespace pipeprune

namespace pipeprune {
namespace {

TEST(PruneCommand, EvaluationFailure_IsAWarningAndTheModelIsSaved) {
  const std::string root = testing::fresh_temp_dir("eval_failure");
  std::ofstream(root + "/empty.txt").flush();
  const auto result = run_pipeprune({"prune", "--model", kModel, "--output", root + "/out", "--method", "magnitude",
                                     "--eval-data", root + "/empty.txt", "--seqlen", "64", "--quiet"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("warning: evaluation of the pruned model failed"), std::string::npos) << result.err;
  EXPECT_TRUE(fs::exists(root + "/out/model.safetensors"));
}

}  // namespace
}  // namespace pipeprune
