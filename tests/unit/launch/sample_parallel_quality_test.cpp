// --parallel samples on a trained model (stories260K) against the default mode, whose masks are
// the reference code's (tests/xcheck): the samples mode sums the same statistics in another
// order, so its Wanda masks may differ only where two scores tie within float rounding
// (agreement >= 0.9999), and its SparseGPT model's perplexity is within 1% of the default's.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include "core/io/safetensors.h"
#include "support/run_command.h"

namespace pipeprune {
namespace {

const std::string kSource = PIPEPRUNE_SOURCE_DIR;

std::vector<std::string> prune_args(const std::string& method, const std::string& out, const std::string& parallel) {
  return {"prune", "--model", kSource + "/examples/stories260K", "--output", out, "--method", method,
          "--calib-data", kSource + "/examples/text/tinystories_val.txt", "--nsamples", "32", "--seqlen", "256",
          "--parallel", parallel, "--eval-data", kSource + "/examples/text/tinystories_val.txt",
          "--eval-max-chunks", "16", "--report", out + ".json", "--quiet", "--threads", "1"};
}

double pruned_perplexity(const std::string& out) {
  std::ifstream report(out + ".json");
  return nlohmann::json::parse(report)["perplexity"]["pruned"].get<double>();
}

// The fraction of the pruned linears' entries that are zero in both or nonzero in both.
double mask_agreement(const std::string& a, const std::string& b) {
  const auto left = SafetensorsCheckpoint::open(a);
  const auto right = SafetensorsCheckpoint::open(b);
  int64_t agree = 0;
  int64_t total = 0;
  for (const std::string& name : left.names()) {
    if (name.find("proj.weight") == std::string::npos) continue;
    const at::Tensor x = left.load(name).eq(0);
    const at::Tensor y = right.load(name).eq(0);
    agree += x.eq(y).sum().item<int64_t>();
    total += x.numel();
  }
  return total > 0 ? static_cast<double>(agree) / static_cast<double>(total) : 0.0;
}

TEST(SampleParallelQuality, WandaMasksAndSparseGptPerplexityMatchTheDefaultMode) {
  const std::string dir = testing::fresh_temp_dir("sample_parallel_quality");
  for (const std::string method : {"wanda", "sparsegpt"}) {
    const std::string reference = dir + "/" + method + "_pipeline";
    const std::string samples = dir + "/" + method + "_samples";
    const auto one = testing::run_command([&] {
      std::vector<std::string> command{PIPEPRUNE_BINARY};
      for (const auto& arg : prune_args(method, reference, "pipeline")) command.push_back(arg);
      return command;
    }());
    ASSERT_EQ(one.exit_code, 0) << one.err;
    const auto two = testing::run_pipeprune_ranks(2, prune_args(method, samples, "samples"));
    ASSERT_EQ(two.exit_code, 0) << two.err;
    const double agreement = mask_agreement(reference, samples);
    const double ppl_reference = pruned_perplexity(reference);
    const double ppl_samples = pruned_perplexity(samples);
    std::printf("%s: mask agreement %.6f, perplexity %.4f (default) %.4f (--parallel samples, world 2)\n",
                method.c_str(), agreement, ppl_reference, ppl_samples);
    if (method == "wanda") EXPECT_GE(agreement, 0.9999);
    EXPECT_NEAR(ppl_samples / ppl_reference, 1.0, 0.01) << method;
  }
}

}  // namespace
}  // namespace pipeprune
