// `pipeprune eval` and `pipeprune generate` on the real stories260K model, against the
// reference numbers of the fixtures (tests/fixtures/FIXTURES_README.md).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <regex>

#include "support/run_command.h"

namespace pipeprune {
namespace {

using testing::run_pipeprune;

const std::string& kSource = testing::kSourceDir;
const std::string& kModel = testing::kDemoModel;
const std::string& kText = testing::kDemoText;

double parse_perplexity(const std::string& out) {
  std::smatch match;
  const std::regex pattern("perplexity ([0-9.]+)");
  if (!std::regex_search(out, match, pattern)) return -1;
  return std::stod(match[1]);
}

TEST(EvalCommand, Stories260K_ReferencePerplexityToFourDecimals) {
  const auto result = run_pipeprune({"eval", "--model", kModel, "--data", kText, "--seqlen", "256", "--max-chunks", "64"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NEAR(parse_perplexity(result.out), 4.189796, 5e-5) << result.out;
  EXPECT_NE(result.out.find("64 windows of 256 tokens, 16320 predictions"), std::string::npos) << result.out;
}

TEST(EvalCommand, Bf16Sharded_ReferencePerplexity) {
  const auto result = run_pipeprune({"eval", "--model", kSource + "/tests/fixtures/stories260K-bf16-sharded", "--data",
                                     kText, "--seqlen", "256", "--max-chunks", "64"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NEAR(parse_perplexity(result.out), 4.1915, 5e-5) << result.out;
}

TEST(EvalCommand, SeqlenAboveContext_ClampedWithWarning) {
  const auto result = run_pipeprune({"eval", "--model", kModel, "--data", kText, "--seqlen", "4096", "--max-chunks", "2"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("--seqlen 4096 is longer than the model's context"), std::string::npos) << result.err;
  EXPECT_NE(result.out.find("windows of 512 tokens"), std::string::npos) << result.out;
}

TEST(GenerateCommand, Stories260K_GreedyTextEqualsReference) {
  std::ifstream in(kModel + "/reference.json");
  const auto reference = nlohmann::json::parse(in);
  const std::string expected = reference["expected_text"].get<std::string>();
  const auto result = run_pipeprune({"generate", "--model", kModel, "--prompt", "", "--max-new-tokens", "256",
                                     "--temperature", "0", "--quiet"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, expected + "\n");
}

TEST(GenerateCommand, PromptIsContinuedAndSamplingIsSeeded) {
  const std::vector<std::string> base{"generate", "--model", kModel, "--prompt", "Once upon a time",
                                      "--max-new-tokens", "20", "--quiet"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return run_pipeprune(args);
  };
  const auto greedy = with({});
  ASSERT_EQ(greedy.exit_code, 0) << greedy.err;
  EXPECT_EQ(greedy.out.rfind("Once upon a time", 0), 0u) << greedy.out;
  const auto a = with({"--temperature", "1.0", "--top-p", "0.9", "--seed", "1"});
  const auto b = with({"--temperature", "1.0", "--top-p", "0.9", "--seed", "1"});
  const auto c = with({"--temperature", "1.0", "--top-p", "0.9", "--seed", "2"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, c.out);
}

}  // namespace
}  // namespace pipeprune
