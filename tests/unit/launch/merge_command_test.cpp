// `pipeprune merge` end to end on tiny random Llama checkpoints: linear (1, 0) reproduces the
// first model, task arithmetic and TIES equal the arithmetic done here on the loaded tensors,
// DARE gives the same bytes on 1, 2 and 3 ranks, a LoRA fold equals W + (alpha/r) B A, the
// output evaluates, and bad input fails in one line before anything is written.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "core/io/safetensors.h"
#include "core/merge/merge_tensor.h"
#include "support/run_command.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;
using testing::run_pipeprune;

const std::string kText = testing::kDemoText;

// A random model of one small architecture; `seed` makes it a different "fine-tune".
std::string synth(const std::string& dir, const std::string& name, int seed, const std::string& dtype = "fp32",
                  int64_t intermediate = 256) {
  const nlohmann::json config = {{"model_type", "llama"},      {"hidden_size", 128},
                                 {"intermediate_size", intermediate}, {"num_hidden_layers", 2},
                                 {"num_attention_heads", 2},   {"num_key_value_heads", 1},
                                 {"vocab_size", 512},          {"max_position_embeddings", 256},
                                 {"rms_norm_eps", 1e-5},       {"tie_word_embeddings", false}};
  fs::create_directories(dir);
  const std::string config_path = dir + "/" + name + ".json";
  std::ofstream(config_path) << config.dump();
  const std::string out = dir + "/" + name;
  const auto r = run_pipeprune({"synth", "--config", config_path, "--output", out, "--dtype", dtype, "--seed",
                                std::to_string(seed), "--tokenizer-from", testing::kDemoModel, "--quiet"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return out;
}

std::vector<std::string> merge_args(std::vector<std::string> extra) {
  std::vector<std::string> args{"merge", "--quiet"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::string file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(MergeCommand, LinearOneZeroReproducesTheFirstModelAndEvaluates) {
  const std::string dir = testing::fresh_temp_dir("merge_linear");
  const std::string a = synth(dir, "a", 1);
  const std::string b = synth(dir, "b", 2);
  const auto r = run_pipeprune(merge_args({"--method", "linear", "--models", a + "," + b, "--weights", "1,0",
                                           "--output", dir + "/out"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto in = SafetensorsCheckpoint::open(a);
  const auto out = SafetensorsCheckpoint::open(dir + "/out");
  ASSERT_EQ(out.names(), in.names());
  for (const std::string& name : in.names()) EXPECT_TRUE(at::equal(out.load(name), in.load(name))) << name;
  EXPECT_EQ(file_bytes(dir + "/out/config.json").empty(), false);
  const auto eval = run_pipeprune({"eval", "--model", dir + "/out", "--data", kText, "--seqlen", "64", "--max-chunks",
                                   "2", "--quiet"});
  EXPECT_EQ(eval.exit_code, 0) << eval.err;
  EXPECT_NE(eval.out.find("perplexity"), std::string::npos) << eval.out;
  fs::remove_all(dir);
}

TEST(MergeCommand, TaskArithmeticAndTiesEqualTheArithmeticOnTheLoadedTensors) {
  const std::string dir = testing::fresh_temp_dir("merge_ta_ties");
  const std::string base = synth(dir, "base", 1);
  const std::string x = synth(dir, "x", 2);
  const std::string y = synth(dir, "y", 3);
  const auto ta = run_pipeprune(merge_args({"--method", "task_arithmetic", "--base", base, "--models", x + "," + y,
                                            "--weights", "0.5,0.7", "--lambda", "0.9", "--output", dir + "/ta"}));
  ASSERT_EQ(ta.exit_code, 0) << ta.err;
  const auto ties = run_pipeprune(merge_args({"--method", "ties", "--base", base, "--models", x + "," + y, "--weights",
                                              "0.6,0.4", "--density", "0.3,0.5", "--output", dir + "/ties",
                                              "--out-dtype", "bfloat16", "--report", dir + "/ties.json"}));
  ASSERT_EQ(ties.exit_code, 0) << ties.err;
  const auto b = SafetensorsCheckpoint::open(base);
  const auto cx = SafetensorsCheckpoint::open(x);
  const auto cy = SafetensorsCheckpoint::open(y);
  const auto out_ta = SafetensorsCheckpoint::open(dir + "/ta");
  const auto out_ties = SafetensorsCheckpoint::open(dir + "/ties");
  MergeSettings settings = default_settings(MergeMethod::kTies);
  for (const std::string& name : b.names()) {
    const at::Tensor tb = b.load(name), tx = cx.load(name), ty = cy.load(name);
    // mergekit's order: delta * weight per model, summed left to right, times lambda, plus base.
    const at::Tensor expected = tb + ((tx - tb) * 0.5f + (ty - tb) * 0.7f) * 0.9f;
    EXPECT_TRUE(at::allclose(out_ta.load(name), expected, 1e-6, 1e-7)) << name;
    const at::Tensor merged =
        merge_tensor(tb, {tx, ty}, {ModelParams{0.6, 0.3}, ModelParams{0.4, 0.5}}, settings, name).to(at::kBFloat16);
    const at::Tensor written = out_ties.load(name);
    EXPECT_EQ(written.scalar_type(), at::kBFloat16) << name;
    EXPECT_TRUE(at::equal(written, merged)) << name;
  }
  const nlohmann::json config = nlohmann::json::parse(file_bytes(dir + "/ties/config.json"));
  EXPECT_EQ(config.value("torch_dtype", config.value("dtype", "")), "bfloat16");
  const nlohmann::json report = nlohmann::json::parse(file_bytes(dir + "/ties.json"));
  ASSERT_EQ(report["tensors"].size(), b.names().size());
  for (const auto& t : report["tensors"]) {
    ASSERT_TRUE(t.contains("sign_agreement")) << t.dump();
    EXPECT_GT(t["sign_agreement"].get<double>(), 0.0);
    EXPECT_LE(t["sign_agreement"].get<double>(), 1.0);
    EXPECT_NEAR(t["kept_fraction"].get<double>(), 0.4, 0.02) << t.dump();  // the mean of 0.3 and 0.5
  }
  fs::remove_all(dir);
}

// DARE's drop is keyed by (seed, tensor, model, element): the same bytes whatever the ranks.
TEST(MergeCommand, DareIsTheSameOnOneTwoAndThreeRanks) {
  const std::string dir = testing::fresh_temp_dir("merge_dare_ranks");
  const std::string base = synth(dir, "base", 1);
  const std::string x = synth(dir, "x", 2);
  const std::string y = synth(dir, "y", 3);
  auto dare = [&](int np, const std::string& out, const std::string& seed) {
    const auto args = merge_args({"--method", "dare_ties", "--base", base, "--models", x + "," + y, "--density", "0.5",
                                  "--seed", seed, "--output", out, "--max-shard-size", "300KB"});
    return np == 1 ? run_pipeprune(args) : testing::run_pipeprune_ranks(np, args);
  };
  ASSERT_EQ(dare(1, dir + "/one", "7").exit_code, 0);
  for (int np : {2, 3}) {
    const std::string out = dir + "/ranks" + std::to_string(np);
    const auto r = dare(np, out, "7");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    for (const auto& entry : fs::directory_iterator(dir + "/one")) {
      const std::string file = entry.path().filename().string();
      EXPECT_EQ(file_bytes(entry.path()), file_bytes(out + "/" + file)) << np << " ranks: " << file;
    }
  }
  ASSERT_EQ(dare(1, dir + "/seed8", "8").exit_code, 0);
  const auto a = SafetensorsCheckpoint::open(dir + "/one");
  const auto c = SafetensorsCheckpoint::open(dir + "/seed8");
  const std::string q = "model.layers.0.self_attn.q_proj.weight";
  EXPECT_FALSE(at::equal(a.load(q), c.load(q))) << "another seed drops other entries";
  fs::remove_all(dir);
}

// A safetensors file of fp32 tensors, written the plain way (header JSON + raw data).
void write_safetensors(const fs::path& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const auto& [name, t] : tensors) {
    const at::Tensor c = t.to(at::kFloat).contiguous();
    header[name] = {{"dtype", "F32"}, {"shape", c.sizes().vec()},
                    {"data_offsets", {data.size(), data.size() + static_cast<size_t>(c.nbytes())}}};
    data.append(static_cast<const char*>(c.data_ptr()), static_cast<size_t>(c.nbytes()));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = text.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << text << data;
}

TEST(MergeCommand, LoraFoldEqualsTheDenseUpdateAndMergesAsAModel) {
  const std::string dir = testing::fresh_temp_dir("merge_lora");
  const std::string base = synth(dir, "base", 1);
  const std::string other = synth(dir, "other", 2);
  const fs::path adapter = dir + "/adapter";
  fs::create_directories(adapter);
  std::ofstream(adapter / "adapter_config.json") << nlohmann::json{
      {"peft_type", "LORA"}, {"r", 4}, {"lora_alpha", 8}, {"target_modules", {"q_proj"}}, {"bias", "none"},
      {"use_rslora", false}, {"fan_in_fan_out", false}, {"use_dora", false}}.dump();
  at::manual_seed(0);
  const at::Tensor a0 = at::randn({4, 128}), b0 = at::randn({128, 4});
  const at::Tensor a1 = at::randn({4, 128}), b1 = at::randn({128, 4});
  write_safetensors(adapter / "adapter_model.safetensors",
                    {{"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", a0},
                     {"base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", b0},
                     {"base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight", a1},
                     {"base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight", b1}});
  const auto r = run_pipeprune(merge_args({"--method", "lora", "--lora", adapter.string(), "--lora-base", base,
                                           "--output", dir + "/folded"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto in = SafetensorsCheckpoint::open(base);
  const auto folded = SafetensorsCheckpoint::open(dir + "/folded");
  for (const std::string& name : in.names()) {
    at::Tensor expected = in.load(name);
    if (name == "model.layers.0.self_attn.q_proj.weight") expected = expected + at::matmul(b0, a0) * 2.0f;
    if (name == "model.layers.1.self_attn.q_proj.weight") expected = expected + at::matmul(b1, a1) * 2.0f;
    EXPECT_TRUE(at::allclose(folded.load(name), expected, 1e-5, 1e-6)) << name;
  }
  // MODEL+ADAPTER in a merge is the folded model: linear (1, 0) of it is the fold.
  const auto m = run_pipeprune(merge_args({"--method", "linear", "--models", base + "+" + adapter.string() + "," + other,
                                           "--weights", "1,0", "--output", dir + "/merged"}));
  ASSERT_EQ(m.exit_code, 0) << m.err;
  const auto merged = SafetensorsCheckpoint::open(dir + "/merged");
  for (const std::string& name : in.names()) EXPECT_TRUE(at::equal(merged.load(name), folded.load(name))) << name;
  fs::remove_all(dir);
}

// A tensor that runs out of device memory is merged again on the CPU: the same bytes, a warning
// naming it, and the report says so (injected: this machine has no GPU).
TEST(MergeCommand, OutOfMemoryTensorIsRedoneOnTheCpu) {
  const std::string dir = testing::fresh_temp_dir("merge_oom");
  const std::string base = synth(dir, "base", 1);
  const std::string x = synth(dir, "x", 2);
  const std::string y = synth(dir, "y", 3);
  const std::string down = "model.layers.1.mlp.down_proj.weight";
  auto ties = [&](const std::string& out, const std::map<std::string, std::string>& env) {
    return run_pipeprune({"merge", "--method", "ties", "--base", base, "--models", x + "," + y, "--density", "0.5",
                          "--output", out, "--report", out + ".json"},
                         env);
  };
  ASSERT_EQ(ties(dir + "/free", {}).exit_code, 0);
  const auto r = ties(dir + "/retried", {{"PIPEPRUNE_TEST_MERGE_OOM", down}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("merge: " + down + " ran out of memory on cpu; merging it on the CPU"), std::string::npos)
      << r.err;
  for (const auto& entry : fs::directory_iterator(dir + "/free")) {
    const std::string file = entry.path().filename().string();
    EXPECT_EQ(file_bytes(entry.path()), file_bytes(dir + "/retried/" + file)) << file;
  }
  int retried = 0;
  const nlohmann::json report = nlohmann::json::parse(file_bytes(dir + "/retried.json"));
  for (const auto& t : report["tensors"]) {
    if (t.value("cpu_retry", false)) {
      ++retried;
      EXPECT_EQ(t["name"], down);
    }
  }
  EXPECT_EQ(retried, 1);
  fs::remove_all(dir);
}

// estimate plans a merge from the checkpoint's headers with the job's own formula: for the
// 512 x 128 fp32 embedding and a base with two models, 6 fp32 copies (1.50 MiB), the three
// inputs' stored bytes (768 KiB) and the output (256 KiB).
TEST(MergeCommand, EstimatePlansTheLargestTensor) {
  const std::string dir = testing::fresh_temp_dir("merge_estimate");
  const std::string base = synth(dir, "base", 1);
  const auto r = run_pipeprune({"estimate", "--model", base, "--method", "ties", "--merge-models", "2", "--world", "2",
                                "--max-memory", "0:cpu=64GiB,1:cpu=1MiB"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("largest tensor model.embed_tokens.weight [512, 128]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1.50 MiB     768.00 KiB  256.00 KiB"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("64.00 GiB  yes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1.00 MiB  NO"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

TEST(MergeCommand, BadInputFailsInOneLineBeforeWriting) {
  const std::string dir = testing::fresh_temp_dir("merge_bad");
  const std::string base = synth(dir, "base", 1);
  const std::string x = synth(dir, "x", 2);
  const std::string wide = synth(dir, "wide", 3, "fp32", 384);
  const std::string out = dir + "/out";
  auto fails_with = [&](const std::vector<std::string>& extra, const std::string& message) {
    const auto r = run_pipeprune(merge_args(extra));
    EXPECT_NE(r.exit_code, 0) << message;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out)) << message;
  };
  fails_with({"--method", "ties", "--models", x, "--output", out}, "give --base DIR");
  fails_with({"--method", "ties", "--base", base, "--models", x, "--density", "0", "--output", out}, "--density");
  fails_with({"--method", "linear", "--models", base + "," + x, "--weights", "1,2,3", "--output", out},
             "--weights has 3 values for 2 models");
  fails_with({"--method", "task_arithmetic", "--base", base, "--models", wide, "--output", out},
             "config.json intermediate_size");
  fails_with({"--method", "median", "--base", base, "--models", x, "--output", out}, "--method: unknown merge method");
  fails_with({"--method", "linear", "--models", dir + "/missing", "--output", out}, "is not a folder");
  fails_with({"--method", "task_arithmetic", "--base", base, "--models", x, "--rescale", "l1", "--output", out},
             "--rescale: --method task_arithmetic drops nothing");
  fails_with({"--method", "task_arithmetic", "--base", base, "--models", x, "--max-memory", "cpu=1MiB", "--output", out},
             "but --max-memory gives 1.00 MiB; raise --max-memory");
  fs::create_directories(out);
  std::ofstream(out + "/keep.txt") << "mine";
  const auto r = run_pipeprune(merge_args({"--method", "linear", "--models", base + "," + x, "--output", out}));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(file_bytes(out + "/keep.txt"), "mine");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace pipeprune
