// `pipeprune prune --sparsity-profile owl|explicit` end to end on the trained stories260K: OWL's
// ratios (mean S, spread 2 lambda, more outliers -> lower sparsity) reach the pruners and the
// report, the same at world 1 and 2 and with --parallel samples; an explicit list (flag, file,
// TOML array) is applied layer by layer; N:M keeps N:M; bad combinations are one-line refusals.
// The ratios against a direct implementation of the original recipe: tests/xcheck/test_owl.py.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "core/common/files.h"
#include "support/run_command.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;
using testing::run_pipeprune;

std::vector<std::string> prune_args(const std::string& out, std::vector<std::string> extra) {
  std::vector<std::string> args{"prune",        "--model",  testing::kDemoModel, "--output",  out,
                                "--calib-data", testing::kDemoText, "--nsamples", "8", "--seqlen", "128",
                                "--report",     out + ".json", "--quiet"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

nlohmann::json prune_report(const std::string& out, const std::vector<std::string>& extra, int ranks = 1) {
  const auto result = ranks == 1 ? run_pipeprune(prune_args(out, extra))
                                 : testing::run_pipeprune_ranks(ranks, prune_args(out, extra));
  EXPECT_EQ(result.exit_code, 0) << result.err;
  if (result.exit_code != 0) return {};
  return nlohmann::json::parse(read_file(out + ".json"));
}

// Every row of every linear of a layer pruned to int(cols * s) (Wanda), or every matrix to
// int(numel * s) + 1 (magnitude: the reference prunes <= the sorted value at that index): the
// report's zeros per linear.
void expect_rows_pruned_to(const nlohmann::json& report, const std::vector<double>& targets, bool per_matrix = false) {
  for (const auto& layer : report["layers"]) {
    const double s = targets.at(layer["layer"].get<size_t>());
    EXPECT_DOUBLE_EQ(layer["target_sparsity"].get<double>(), s);
    for (const auto& [name, linear] : layer["linears"].items()) {
      // stories260K: every linear reads 64 columns but down (172); rows = numel / cols.
      const int64_t numel = linear["numel"];
      const int64_t cols = name == "down" ? 172 : 64;
      const int64_t expected = per_matrix ? static_cast<int64_t>(static_cast<double>(numel) * s) + 1
                                          : numel / cols * static_cast<int64_t>(static_cast<double>(cols) * s);
      EXPECT_EQ(linear["zeros"].get<int64_t>(), expected) << "layer " << layer["layer"] << " " << name;
    }
  }
}

TEST(SparsityProfileCommand, Owl_RatiosMeanTheTargetSpreadTwoLambdaAndAreApplied) {
  const std::string dir = testing::fresh_temp_dir("owl_command");
  const nlohmann::json report = prune_report(dir + "/w1", {"--sparsity", "0.7", "--sparsity-profile", "owl"});
  ASSERT_FALSE(report.is_null());
  const auto& profile = report["sparsity_profile"];
  EXPECT_EQ(profile["kind"], "owl");
  EXPECT_EQ(report["sparsity_profile"]["owl_lambda"], 0.08);
  EXPECT_EQ(report["sparsity_profile"]["owl_m"], 5.0);
  const auto s = profile["layer_sparsity"].get<std::vector<double>>();
  const auto d = profile["outlier_percent"].get<std::vector<double>>();
  ASSERT_EQ(s.size(), 5u);
  ASSERT_EQ(d.size(), 5u);
  EXPECT_NEAR(std::accumulate(s.begin(), s.end(), 0.0) / 5, 0.7, 1e-12);
  EXPECT_NEAR(*std::max_element(s.begin(), s.end()) - *std::min_element(s.begin(), s.end()), 0.16, 1e-12);
  // The layer with the most outliers keeps the most weights.
  EXPECT_EQ(std::max_element(d.begin(), d.end()) - d.begin(), std::min_element(s.begin(), s.end()) - s.begin());
  expect_rows_pruned_to(report, s);

  // Pipeline ranks walk the same dense activations: the same densities, bit for bit; samples
  // mode sums the statistics in another order (the same to float rounding).
  const nlohmann::json two = prune_report(dir + "/w2", {"--sparsity", "0.7", "--sparsity-profile", "owl"}, 2);
  EXPECT_EQ(two["sparsity_profile"]["outlier_percent"], profile["outlier_percent"]);
  EXPECT_TRUE(fs::exists(dir + "/w2/model.safetensors"));
  const nlohmann::json samples =
      prune_report(dir + "/s2", {"--sparsity", "0.7", "--sparsity-profile", "owl", "--parallel", "samples"}, 2);
  const auto s_samples = samples["sparsity_profile"]["layer_sparsity"].get<std::vector<double>>();
  for (size_t l = 0; l < s.size(); ++l) EXPECT_NEAR(s_samples.at(l), s[l], 1e-6) << "layer " << l;
  fs::remove_all(dir);
}

TEST(SparsityProfileCommand, OwlOutlierPass_OutOfMemoryRetriesTheLayerOnTheCpu_SameResult) {
  const std::string dir = testing::fresh_temp_dir("owl_oom");
  const std::vector<std::string> owl{"--sparsity", "0.7", "--sparsity-profile", "owl"};
  const nlohmann::json normal = prune_report(dir + "/normal", owl);
  // Each injected failure fires once, in the first walk that reaches it: layer 1's stats pass in
  // the outlier pass (before its ratios are printed), layer 2's output pass in the prune (the
  // pipeline's outlier pass has none: its stats pass makes the outputs).
  auto args = prune_args(dir + "/injected", owl);
  args.erase(std::find(args.begin(), args.end(), "--quiet"));
  const auto injected = run_pipeprune(args, {{"PIPEPRUNE_TEST_OOM", "1:stats,2:output"}});
  ASSERT_EQ(injected.exit_code, 0) << injected.err;
  const size_t stats_oom = injected.err.find("layer 2/5: the stats pass ran out of memory");
  const size_t ratios = injected.err.find("OWL layer sparsity");
  ASSERT_NE(stats_oom, std::string::npos) << injected.err;
  ASSERT_NE(ratios, std::string::npos) << injected.err;
  EXPECT_LT(stats_oom, ratios) << injected.err;
  const size_t output_oom = injected.err.find("layer 3/5: the output pass ran out of memory");
  ASSERT_NE(output_oom, std::string::npos) << injected.err;
  EXPECT_GT(output_oom, ratios) << injected.err;
  const auto report = nlohmann::json::parse(read_file(dir + "/injected.json"));
  EXPECT_EQ(report["sparsity_profile"]["outlier_percent"], normal["sparsity_profile"]["outlier_percent"]);
  EXPECT_EQ(read_file(dir + "/injected/model.safetensors"), read_file(dir + "/normal/model.safetensors"));
  fs::remove_all(dir);
}

TEST(SparsityProfileCommand, OwlWithSparseGpt_AndWithNmKeepsNm) {
  const std::string dir = testing::fresh_temp_dir("owl_methods");
  const nlohmann::json sparsegpt =
      prune_report(dir + "/sgpt", {"--method", "sparsegpt", "--sparsity", "0.6", "--sparsity-profile", "owl"});
  const auto s = sparsegpt["sparsity_profile"]["layer_sparsity"].get<std::vector<double>>();
  for (const auto& layer : sparsegpt["layers"]) {
    for (const auto& [name, linear] : layer["linears"].items()) {
      // SparseGPT's mask is per block of columns, not per row: within one column of the target.
      const double cols = name == "down" ? 172 : 64;
      EXPECT_NEAR(linear["sparsity"].get<double>(), s.at(layer["layer"].get<size_t>()), 1.0 / cols) << name;
    }
  }
  const nlohmann::json nm = prune_report(dir + "/nm", {"--pattern", "2:4", "--sparsity-profile", "owl"});
  EXPECT_EQ(nm["sparsity_profile"]["applied"], false);
  EXPECT_EQ(nm["sparsity_profile"]["owl_sparsity"].size(), 5u);
  expect_rows_pruned_to(nm, std::vector<double>(5, 0.5));
  fs::remove_all(dir);
}

TEST(SparsityProfileCommand, ExplicitList_FromTheFlagAFileAndATomlArray) {
  const std::string dir = testing::fresh_temp_dir("explicit_profile");
  const std::vector<double> targets{0.25, 0.5, 0.75, 0.5, 0.125};
  expect_rows_pruned_to(prune_report(dir + "/flag", {"--layer-sparsity", "0.25,0.5,0.75,0.5,0.125"}), targets);
  {
    std::ofstream file(dir + "/ratios.txt");
    file << "# one per layer\n0.25 0.5\n0.75, 0.5\n0.125  # the last\n";
  }
  expect_rows_pruned_to(prune_report(dir + "/file", {"--method", "magnitude", "--layer-sparsity", dir + "/ratios.txt"}),
                        targets, /*per_matrix=*/true);
  {
    std::ofstream file(dir + "/prune.toml");
    file << "sparsity-profile = \"explicit\"\nlayer-sparsity = [0.25, 0.5, 0.75, 0.5, 0.125]\n";
  }
  expect_rows_pruned_to(prune_report(dir + "/toml", {"--config", dir + "/prune.toml"}), targets);
  fs::remove_all(dir);
}

TEST(SparsityProfileCommand, BadCombinations_AreOneLineRefusalsBeforeAnyWork) {
  const std::string dir = testing::fresh_temp_dir("profile_refusals");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--layer-sparsity", "0.5,0.5"}, "--layer-sparsity gives 2 ratios; the model has 5 decoder layers"},
      {{"--layer-sparsity", "0.5,x,0.5"}, "--layer-sparsity: 'x' is not a number"},
      {{"--layer-sparsity", dir + "/missing.txt"}, "neither a number nor a file"},
      {{"--method", "magnitude", "--sparsity-profile", "owl"}, "use --method wanda or sparsegpt with it"},
      {{"--sparsity-profile", "owl", "--calibration", "dense"}, "use --calibration sequential with it"},
      {{"--sparsity-profile", "owl", "--layer-sparsity", "0.5,0.5,0.5,0.5,0.5"},
       "use it with --sparsity-profile explicit"},
      {{"--sparsity-profile", "owl", "--owl-m", "-1"}, "--owl-m -1 must be a finite number > 0"},
      {{"--sparsity-profile", "owl", "--sparsity", "0.95", "--owl-lambda", "0.5"}, "lower --owl-lambda or --sparsity"},
  };
  for (const auto& [extra, message] : cases) {
    const auto result = run_pipeprune(prune_args(dir + "/out", extra));
    EXPECT_NE(result.exit_code, 0) << message;
    EXPECT_NE(result.err.find(message), std::string::npos) << result.err;
    EXPECT_EQ(testing::count_lines(result.err), 1) << result.err;
    EXPECT_FALSE(fs::exists(dir + "/out")) << message;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace pipeprune
