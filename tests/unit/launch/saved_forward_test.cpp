// What `eval --save-windows/--save-logits` and `tokenize` write, so other tools can be compared
// with pipeprune's forward and tokenizer: the windows are the tokenized text cut as the recipe
// says, the NLL of the saved logits is the reported NLL, and the last logits of "Once upon a
// time" are the fixture's float64 reference; at one rank and at two.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <regex>

#include "core/io/npy.h"
#include "support/run_command.h"
#include "unit/io/io_test_util.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;
using testing::run_pipeprune;

const std::string& kModel = testing::kDemoModel;
const std::string& kText = testing::kDemoText;

double total_nll(const std::string& out) {
  std::smatch m;
  EXPECT_TRUE(std::regex_search(out, m, std::regex("total nll ([0-9.e+-]+)"))) << out;
  return m.size() > 1 ? std::stod(m[1].str()) : -1;
}

TEST(SavedForward, WindowsAreTheTokenizedTextAndTheLogitsGiveTheReportedNll) {
  const fs::path dir = testing::fresh_temp_dir("saved_forward");
  const auto ids = run_pipeprune({"tokenize", "--model", kModel, "--file", kText, "--output", (dir / "ids.npy").string()});
  ASSERT_EQ(ids.exit_code, 0) << ids.err;
  const at::Tensor stream = read_npy(dir / "ids.npy").data;
  for (int world : {1, 2}) {
    const std::string tag = std::to_string(world);
    const std::vector<std::string> args{"eval", "--model", kModel, "--data", kText, "--seqlen", "64", "--max-chunks", "5",
                                        "--save-windows", (dir / ("windows" + tag + ".npy")).string(),
                                        "--save-logits", (dir / ("logits" + tag + ".npy")).string()};
    const auto eval = world == 1 ? run_pipeprune(args) : testing::run_pipeprune_ranks(2, args);
    ASSERT_EQ(eval.exit_code, 0) << eval.out << eval.err;
    const at::Tensor windows = read_npy(dir / ("windows" + tag + ".npy")).data;
    ASSERT_EQ(windows.sizes(), (at::IntArrayRef{5, 64}));
    EXPECT_TRUE(at::equal(windows, stream.slice(0, 0, 5 * 64).reshape({5, 64}))) << "world " << world;
    const at::Tensor logits = read_npy(dir / ("logits" + tag + ".npy")).data;
    ASSERT_EQ(logits.sizes(), (at::IntArrayRef{5, 64, 512}));
    // NLL of tokens 1..63 given their prefix, written out independently of the accumulator.
    const at::Tensor log_probs = logits.slice(1, 0, 63).log_softmax(-1).to(at::kDouble);
    const at::Tensor targets = windows.slice(1, 1, 64).unsqueeze(-1);
    const double nll = -log_probs.gather(-1, targets).sum().item<double>();
    EXPECT_NEAR(nll, total_nll(eval.out), 1e-9 * nll) << "world " << world;
  }
}

TEST(SavedForward, LastLogitsOfAPromptEqualTheFloat64Reference) {
  std::ifstream in(kModel + "/reference.json");
  const auto check = nlohmann::json::parse(in)["logits_check"];
  const fs::path dir = testing::fresh_temp_dir("saved_reference");
  testing::write_bytes(dir / "prompt.txt", check["text"].get<std::string>());
  const auto tokens = run_pipeprune({"tokenize", "--model", kModel, "--file", (dir / "prompt.txt").string()});
  ASSERT_EQ(tokens.exit_code, 0) << tokens.err;
  EXPECT_EQ(nlohmann::json::parse(tokens.out), check["input_ids"]);
  const int64_t n = static_cast<int64_t>(check["input_ids"].size());
  const auto eval = run_pipeprune({"eval", "--model", kModel, "--data", (dir / "prompt.txt").string(), "--seqlen",
                                   std::to_string(n), "--save-logits", (dir / "logits.npy").string()});
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  const at::Tensor logits = read_npy(dir / "logits.npy").data;
  const std::vector<double> expected = check["last_position_logits"].get<std::vector<double>>();
  ASSERT_EQ(logits.size(2), static_cast<int64_t>(expected.size()));
  const at::Tensor last = logits[0][n - 1].to(at::kDouble);
  const at::Tensor reference = at::tensor(expected, at::kDouble);
  EXPECT_LT((last - reference).abs().max().item<double>(), 1e-4) << "fp32 engines agree with it to ~1e-5";
}

TEST(TokenizeCommand, BosUnlessNoBosAndExactlyOneSource) {
  const auto with_bos = run_pipeprune({"tokenize", "--model", kModel, "--text", "Once upon a time"});
  const auto without = run_pipeprune({"tokenize", "--model", kModel, "--text", "Once upon a time", "--no-bos"});
  ASSERT_EQ(with_bos.exit_code, 0) << with_bos.err;
  ASSERT_EQ(without.exit_code, 0) << without.err;
  EXPECT_EQ(nlohmann::json::parse(with_bos.out), nlohmann::json::parse("[1, 403, 407, 261, 378]"));
  EXPECT_EQ(nlohmann::json::parse(without.out), nlohmann::json::parse("[403, 407, 261, 378]"));
  const auto neither = run_pipeprune({"tokenize", "--model", kModel});
  EXPECT_NE(neither.exit_code, 0);
  EXPECT_EQ(testing::count_lines(neither.err), 1) << neither.err;
  EXPECT_NE(neither.err.find("give exactly one of --text and --file"), std::string::npos) << neither.err;
}

}  // namespace
}  // namespace pipeprune
