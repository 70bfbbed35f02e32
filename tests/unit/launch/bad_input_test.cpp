// Bad input to the commands: each case must end with exactly one error line naming what is
// wrong, a non-zero exit, and nothing written at the output path.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "support/run_command.h"
#include "unit/io/io_test_util.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;
using testing::run_pipeprune;

const std::string& kSource = testing::kSourceDir;
const std::string& kModel = testing::kDemoModel;
const std::string& kText = testing::kDemoText;

using testing::read_bytes;
using testing::write_bytes;

// A copy of the demo model in a fresh folder, for corrupting.
fs::path copy_model(const std::string& name) {
  const fs::path dir = testing::fresh_temp_dir(name);
  for (const auto& entry : fs::directory_iterator(kModel)) fs::copy_file(entry.path(), dir / entry.path().filename());
  return dir;
}

// Rewrites model.safetensors with its header JSON passed through `edit` (data unchanged).
void edit_header(const fs::path& dir, const std::function<void(nlohmann::json&)>& edit) {
  const std::string bytes = read_bytes(dir / "model.safetensors");
  uint64_t length = 0;
  std::memcpy(&length, bytes.data(), 8);
  nlohmann::json header = nlohmann::json::parse(bytes.substr(8, length));
  edit(header);
  std::string text = header.dump();
  while (text.size() % 8 != 0) text += ' ';
  const uint64_t new_length = text.size();
  std::string out(reinterpret_cast<const char*>(&new_length), 8);
  out += text;
  out += bytes.substr(8 + length);
  write_bytes(dir / "model.safetensors", out);
}

void edit_config(const fs::path& dir, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json config = nlohmann::json::parse(read_bytes(dir / "config.json"));
  edit(config);
  write_bytes(dir / "config.json", config.dump(2));
}

// Runs `eval` and `prune` on the model and checks both fail cleanly with `expected` in the error.
void expect_clean_failure(const fs::path& model, const std::string& expected) {
  const std::string out_dir = testing::fresh_temp_dir("bad_input_out") + "/pruned";
  const auto eval = run_pipeprune({"eval", "--model", model.string(), "--data", kText, "--seqlen", "64",
                                   "--max-chunks", "2", "--quiet"});
  EXPECT_NE(eval.exit_code, 0);
  EXPECT_EQ(testing::count_lines(eval.err), 1) << eval.err;
  EXPECT_NE(eval.err.find(expected), std::string::npos) << "expected '" << expected << "' in: " << eval.err;
  const auto prune = run_pipeprune({"prune", "--model", model.string(), "--output", out_dir, "--method", "wanda",
                                    "--calib-data", kText, "--nsamples", "2", "--seqlen", "32", "--quiet"});
  EXPECT_NE(prune.exit_code, 0);
  EXPECT_EQ(testing::count_lines(prune.err), 1) << prune.err;
  EXPECT_NE(prune.err.find(expected), std::string::npos) << "expected '" << expected << "' in: " << prune.err;
  EXPECT_FALSE(fs::exists(out_dir)) << "a failed prune left " << out_dir;
  EXPECT_TRUE(fs::is_empty(fs::path(out_dir).parent_path())) << "a failed prune left a temporary folder";
}

TEST(BadCheckpoint, TruncatedFile) {
  const fs::path dir = copy_model("truncated");
  const std::string bytes = read_bytes(dir / "model.safetensors");
  write_bytes(dir / "model.safetensors", bytes.substr(0, bytes.size() / 2));
  expect_clean_failure(dir, "model.safetensors");
}

TEST(BadCheckpoint, HeaderLengthPastTheEnd) {
  const fs::path dir = copy_model("header_length");
  std::string bytes = read_bytes(dir / "model.safetensors");
  const uint64_t huge = bytes.size() + 1000;
  std::memcpy(bytes.data(), &huge, 8);
  write_bytes(dir / "model.safetensors", bytes);
  expect_clean_failure(dir, "model.safetensors");
}

TEST(BadCheckpoint, OverlappingOffsets) {
  const fs::path dir = copy_model("overlap");
  edit_header(dir, [](nlohmann::json& h) {
    auto& a = h["model.layers.0.mlp.up_proj.weight"]["data_offsets"];
    const auto& b = h["model.layers.0.mlp.gate_proj.weight"]["data_offsets"];
    a = b;  // same byte range as another tensor of the same size
  });
  expect_clean_failure(dir, "overlap");
}

TEST(BadCheckpoint, OffsetsOutsideTheFile) {
  const fs::path dir = copy_model("outside");
  edit_header(dir, [](nlohmann::json& h) {
    auto& offsets = h["model.norm.weight"]["data_offsets"];
    offsets = {100000000, 100000000 + 64 * 4};
  });
  expect_clean_failure(dir, "model.norm.weight");
}

TEST(BadCheckpoint, UnknownDtype) {
  const fs::path dir = copy_model("dtype");
  edit_header(dir, [](nlohmann::json& h) { h["model.norm.weight"]["dtype"] = "I32"; });
  expect_clean_failure(dir, "I32");
}

TEST(BadCheckpoint, TensorMissing) {
  const fs::path dir = copy_model("missing_tensor");
  edit_header(dir, [](nlohmann::json& h) { h.erase("model.layers.3.mlp.down_proj.weight"); });
  expect_clean_failure(dir, "model.layers.3.mlp.down_proj.weight");
}

TEST(BadCheckpoint, TensorOfWrongShape) {
  const fs::path dir = copy_model("wrong_shape");
  edit_header(dir, [](nlohmann::json& h) { h["model.layers.1.self_attn.q_proj.weight"]["shape"] = {32, 128}; });
  expect_clean_failure(dir, "model.layers.1.self_attn.q_proj.weight");
}

TEST(BadConfig, InvalidJson) {
  const fs::path dir = copy_model("invalid_json");
  write_bytes(dir / "config.json", "{\"model_type\": \"llama\", ");
  expect_clean_failure(dir, "config.json");
}

TEST(BadConfig, MissingField) {
  const fs::path dir = copy_model("missing_field");
  edit_config(dir, [](nlohmann::json& c) { c.erase("hidden_size"); });
  expect_clean_failure(dir, "hidden_size");
}

TEST(BadConfig, UnsupportedModelType) {
  const fs::path dir = copy_model("model_type");
  edit_config(dir, [](nlohmann::json& c) { c["model_type"] = "gpt_neox"; });
  expect_clean_failure(dir, "gpt_neox");
}

TEST(BadOptions, SeqlenBelowTwo) {
  const auto result = run_pipeprune({"eval", "--model", kModel, "--data", kText, "--seqlen", "1", "--quiet"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(testing::count_lines(result.err), 1) << result.err;
  EXPECT_NE(result.err.find("--seqlen"), std::string::npos) << result.err;
}

TEST(BadOptions, EmptyEvalFile) {
  const std::string dir = testing::fresh_temp_dir("empty_eval");
  write_bytes(dir + "/empty.txt", "");
  const auto result =
      run_pipeprune({"eval", "--model", kModel, "--data", dir + "/empty.txt", "--seqlen", "64", "--quiet"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(testing::count_lines(result.err), 1) << result.err;
  EXPECT_NE(result.err.find("empty.txt"), std::string::npos) << result.err;
}

TEST(BadOptions, MissingModelFolder) {
  const auto result = run_pipeprune({"eval", "--model", "/nonexistent/model", "--data", kText, "--quiet"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(testing::count_lines(result.err), 1) << result.err;
  EXPECT_NE(result.err.find("/nonexistent/model"), std::string::npos) << result.err;
}

}  // namespace
}  // namespace pipeprune

namespace pipeprune {
namespace {

// `prune` option errors: one line naming the flag, non-zero exit, no output folder.
void expect_prune_option_error(std::vector<std::string> extra, const std::string& expected,
                               const std::string& calib = kText) {
  const std::string dir = testing::fresh_temp_dir("prune_options");
  std::vector<std::string> args{"prune", "--model", kModel, "--output", dir + "/out", "--quiet"};
  if (!calib.empty()) {
    args.push_back("--calib-data");
    args.push_back(calib);
  }
  args.insert(args.end(), extra.begin(), extra.end());
  const auto result = run_pipeprune(args);
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(testing::count_lines(result.err), 1) << result.err;
  EXPECT_NE(result.err.find(expected), std::string::npos) << "expected '" << expected << "' in: " << result.err;
  EXPECT_TRUE(fs::is_empty(dir)) << "a failed prune left files in " << dir;
}

TEST(BadPruneOptions, UnknownMethod) { expect_prune_option_error({"--method", "obs"}, "--method"); }
TEST(BadPruneOptions, UnknownPattern) { expect_prune_option_error({"--pattern", "blocky"}, "--pattern"); }
TEST(BadPruneOptions, SparsityOutsideRange) {
  expect_prune_option_error({"--sparsity", "1.0"}, "--sparsity");
  expect_prune_option_error({"--sparsity", "-0.1"}, "--sparsity");
}
TEST(BadPruneOptions, Fp16ComputeOnTheCpu_WhereLibTorchHasNoFp16Matmul) {
  // Debian's LibTorch 1.13 has none; a LibTorch that has one (the pip wheel's) runs fp16 on the CPU.
  if (testing::run_pipeprune({"eval", "--model", kModel, "--data", kText, "--device", "cpu", "--compute-dtype", "fp16",
                              "--seqlen", "32", "--max-chunks", "1", "--quiet"})
          .exit_code == 0) {
    GTEST_SKIP() << "this LibTorch multiplies fp16 on the CPU";
  }
  expect_prune_option_error({"--device", "cpu", "--compute-dtype", "fp16"}, "--compute-dtype fp16 needs a CUDA device");
}
TEST(BadPruneOptions, NNotBelowM) { expect_prune_option_error({"--pattern", "4:4"}, "--pattern"); }
TEST(BadPruneOptions, ColumnsNotDivisibleByM) {
  // down_proj of stories260K has 172 inputs: 4:8 cannot tile it.
  expect_prune_option_error({"--pattern", "4:8", "--seqlen", "32"}, "mlp.down_proj");
}
TEST(BadPruneOptions, NsamplesBelowOne) { expect_prune_option_error({"--nsamples", "0"}, "--nsamples"); }
TEST(BadPruneOptions, CalibrationTextShorterThanOneWindow) {
  const std::string dir = testing::fresh_temp_dir("short_calib");
  write_bytes(dir + "/short.txt", "Once upon a time.");
  expect_prune_option_error({"--seqlen", "64"}, "short.txt", dir + "/short.txt");
}
TEST(BadPruneOptions, NoCalibrationSource) {
  expect_prune_option_error({"--method", "wanda", "--seqlen", "32"}, "--calib-data", "");
}
TEST(BadPruneOptions, UnreadableCalibTokens) {
  expect_prune_option_error({"--calib-tokens", "/nonexistent/tokens.npy", "--seqlen", "32"}, "tokens.npy", "");
}
TEST(BadPruneOptions, CalibTokensOfWrongDtypeOrShape) {
  const std::string dir = testing::fresh_temp_dir("bad_npy");
  auto npy = [&](const std::string& name, const std::string& descr, const std::string& shape, size_t bytes) {
    std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
    while ((10 + header.size() + 1) % 64 != 0) header += ' ';
    header += '\n';
    std::string file = std::string("\x93NUMPY\x01\x00", 8);
    file += static_cast<char>(header.size() & 0xff);
    file += static_cast<char>(header.size() >> 8);
    file += header + std::string(bytes, '\0');
    write_bytes(dir + "/" + name, file);
    return dir + "/" + name;
  };
  expect_prune_option_error({"--calib-tokens", npy("f.npy", "<f4", "(2, 8)", 64)}, "<f4", "");
  expect_prune_option_error({"--calib-tokens", npy("d3.npy", "<i8", "(2, 2, 8)", 256)}, "d3.npy", "");
}
TEST(BadPruneOptions, OutputExists_ErrorUnlessOverwrite) {
  const std::string dir = testing::fresh_temp_dir("exists");
  fs::create_directories(dir + "/out");
  write_bytes(dir + "/out/keep.txt", "mine");
  auto result = run_pipeprune({"prune", "--model", kModel, "--output", dir + "/out", "--method", "magnitude", "--quiet"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(testing::count_lines(result.err), 1) << result.err;
  EXPECT_NE(result.err.find("--overwrite"), std::string::npos) << result.err;
  EXPECT_EQ(read_bytes(dir + "/out/keep.txt"), "mine");
  result = run_pipeprune({"prune", "--model", kModel, "--output", dir + "/out", "--method", "magnitude", "--overwrite",
                          "--quiet"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_FALSE(fs::exists(dir + "/out/keep.txt"));
  EXPECT_TRUE(fs::exists(dir + "/out/model.safetensors"));
}

}  // namespace
}  // namespace pipeprune
