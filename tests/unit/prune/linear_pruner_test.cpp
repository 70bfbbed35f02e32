#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "core/common/error.h"
#include "core/prune/calibration_stats.h"
#include "core/prune/pruner.h"

namespace pipeprune {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kRows = 16, kCols = 32;

PruneOptions options_for(PruneMethod method, const char* pattern = "unstructured") {
  PruneOptions options;
  options.method = method;
  options.pattern = SparsityPattern::parse(pattern, 0.5);
  options.blocksize = 8;
  return options;
}

at::Tensor inputs(uint64_t seed) {
  at::manual_seed(seed);
  return at::randn({6, 10, kCols});
}

at::Tensor weights(uint64_t seed) {
  at::manual_seed(seed);
  return at::randn({kRows, kCols});
}

TEST(LinearPruner, Magnitude_NoCalibration_PrunesInPlace) {
  auto pruner = make_linear_pruner(options_for(PruneMethod::kMagnitude), kRows, kCols, at::kCPU);
  EXPECT_FALSE(pruner->needs_calibration());
  at::Tensor w = weights(1);
  const at::Tensor original = w.clone();
  const at::Tensor mask = pruner->prune(w);
  EXPECT_TRUE(at::equal(mask, magnitude_mask(original, SparsityPattern::parse("unstructured", 0.5))));
  EXPECT_TRUE(at::equal(w, original.masked_fill(mask, 0)));
  EXPECT_EQ(pruner->bytes_statistics(), 0);
}

TEST(LinearPruner, Wanda_EqualsStatsThenMask) {
  auto pruner = make_linear_pruner(options_for(PruneMethod::kWanda, "2:4"), kRows, kCols, at::kCPU);
  EXPECT_TRUE(pruner->needs_calibration());
  pruner->add_batch(inputs(2));
  at::Tensor scaler = at::zeros({kCols});
  int64_t n = 0;
  add_wanda_batch(scaler, &n, inputs(2));
  at::Tensor w = weights(3);
  const at::Tensor original = w.clone();
  const at::Tensor mask = pruner->prune(w);
  EXPECT_TRUE(at::equal(mask, wanda_mask(original, scaler, SparsityPattern::parse("2:4", 0), false)));
  EXPECT_TRUE(at::equal(w, original.masked_fill(mask, 0)));
}

// Feeding [B, T, cols] at once or B times [1, T, cols] must give the same pruned weights.
void expect_batching_invariant(PruneMethod method, const char* pattern) {
  auto batched = make_linear_pruner(options_for(method, pattern), kRows, kCols, at::kCPU);
  auto single = make_linear_pruner(options_for(method, pattern), kRows, kCols, at::kCPU);
  const at::Tensor x = inputs(4);
  batched->add_batch(x);
  for (int64_t b = 0; b < x.size(0); ++b) single->add_batch(x.slice(0, b, b + 1));
  at::Tensor w_batched = weights(5), w_single = weights(5);
  EXPECT_TRUE(at::equal(batched->prune(w_batched), single->prune(w_single)));
  EXPECT_TRUE(at::equal(w_batched, w_single));
}

TEST(LinearPruner, Wanda_BatchedEqualsSequential) {
  expect_batching_invariant(PruneMethod::kWanda, "unstructured");
  expect_batching_invariant(PruneMethod::kWanda, "4:8");
}

TEST(LinearPruner, SparseGpt_BatchedEqualsSequential) {
  expect_batching_invariant(PruneMethod::kSparseGPT, "unstructured");
  expect_batching_invariant(PruneMethod::kSparseGPT, "2:4");
}

// A linear reading the same input as another (k and v next to q) gets a copy of its
// statistics: the same masks and weights as accumulating its own, and the original's prune
// (which consumes SparseGPT's Hessian) leaves the copy intact.
TEST(LinearPruner, CloneFor_SameResultAsOwnStatistics) {
  for (PruneMethod method : {PruneMethod::kMagnitude, PruneMethod::kWanda, PruneMethod::kSparseGPT}) {
    constexpr int64_t kOtherRows = 8;
    auto first = make_linear_pruner(options_for(method), kRows, kCols, at::kCPU);
    auto own = make_linear_pruner(options_for(method), kOtherRows, kCols, at::kCPU);
    first->add_batch(inputs(3));
    own->add_batch(inputs(3));
    auto copy = first->clone_for(kOtherRows);
    EXPECT_EQ(copy->bytes_statistics(), own->bytes_statistics());
    at::Tensor w_first = weights(4);
    first->prune(w_first);
    at::Tensor w_copy = weights(5).slice(0, 0, kOtherRows).clone();
    at::Tensor w_own = w_copy.clone();
    EXPECT_TRUE(at::equal(copy->prune(w_copy), own->prune(w_own))) << prune_method_name(method);
    EXPECT_TRUE(at::equal(w_copy, w_own)) << prune_method_name(method);
  }
}

// After prune(), the clone shares what the prune made of the statistics (SparseGPT's H^-1
// factor, made once per input): the same masks and weights as a pruner with its own
// statistics, and the clone's prune leaves the shared factor as it was.
TEST(LinearPruner, CloneForAfterPrune_SharesTheFactorWithTheSameResult) {
  for (PruneMethod method : {PruneMethod::kMagnitude, PruneMethod::kWanda, PruneMethod::kSparseGPT}) {
    constexpr int64_t kOtherRows = 8;
    auto first = make_linear_pruner(options_for(method), kRows, kCols, at::kCPU);
    first->add_batch(inputs(3));
    at::Tensor w_first = weights(4);
    first->prune(w_first);
    auto copy = first->clone_for(kOtherRows);
    auto again = first->clone_for(kOtherRows);
    first->release();
    for (auto* shared : {copy.get(), again.get()}) {
      auto own = make_linear_pruner(options_for(method), kOtherRows, kCols, at::kCPU);
      own->add_batch(inputs(3));
      at::Tensor w_copy = weights(5).slice(0, 0, kOtherRows).clone();
      at::Tensor w_own = w_copy.clone();
      EXPECT_TRUE(at::equal(shared->prune(w_copy), own->prune(w_own))) << prune_method_name(method);
      EXPECT_TRUE(at::equal(w_copy, w_own)) << prune_method_name(method);
    }
  }
}

TEST(LinearPruner, BytesStatistics_MatchPlannerAndRelease) {
  for (PruneMethod method : {PruneMethod::kWanda, PruneMethod::kSparseGPT}) {
    auto pruner = make_linear_pruner(options_for(method), kRows, kCols, at::kCPU);
    EXPECT_EQ(pruner->bytes_statistics(), pruner_statistics_bytes(method, kCols));
    pruner->add_batch(inputs(6));
    at::Tensor w = weights(7);
    pruner->prune(w);
    pruner->release();
    EXPECT_EQ(pruner->bytes_statistics(), 0) << prune_method_name(method);
    EXPECT_THROW(pruner->add_batch(inputs(6)), Error) << prune_method_name(method);
  }
}

TEST(LinearPruner, PruneWithoutCalibration_Error) {
  for (PruneMethod method : {PruneMethod::kWanda, PruneMethod::kSparseGPT}) {
    auto pruner = make_linear_pruner(options_for(method), kRows, kCols, at::kCPU);
    at::Tensor w = weights(8);
    EXPECT_THROW(pruner->prune(w), Error) << prune_method_name(method);
  }
}

TEST(LinearPruner, WrongWeightShapeOrDtype_Error) {
  auto pruner = make_linear_pruner(options_for(PruneMethod::kMagnitude), kRows, kCols, at::kCPU);
  at::Tensor transposed = weights(9).t().contiguous();
  EXPECT_THROW(pruner->prune(transposed), Error);
  at::Tensor half = weights(9).to(at::kBFloat16);
  EXPECT_THROW(pruner->prune(half), Error);
}

std::string config_error(const PruneOptions& options, int64_t cols) {
  try {
    make_linear_pruner(options, kRows, cols, at::kCPU);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(LinearPruner, BadOptions_ConfigErrorNamingFlag) {
  PruneOptions variant_nm = options_for(PruneMethod::kWanda, "2:4");
  variant_nm.use_variant = true;
  EXPECT_THAT(config_error(variant_nm, kCols), HasSubstr("--use-variant"));
  PruneOptions variant_magnitude = options_for(PruneMethod::kMagnitude);
  variant_magnitude.use_variant = true;
  EXPECT_THAT(config_error(variant_magnitude, kCols), HasSubstr("--use-variant"));
  PruneOptions blocksize = options_for(PruneMethod::kSparseGPT, "4:8");
  blocksize.blocksize = 12;
  EXPECT_THAT(config_error(blocksize, kCols), HasSubstr("--blocksize"));
  PruneOptions damp = options_for(PruneMethod::kSparseGPT);
  damp.percdamp = -1;
  EXPECT_THAT(config_error(damp, kCols), HasSubstr("--percdamp"));
  PruneOptions sparsity = options_for(PruneMethod::kWanda);
  sparsity.pattern.sparsity = 1.0;
  EXPECT_THAT(config_error(sparsity, kCols), HasSubstr("--sparsity"));
  EXPECT_THAT(config_error(options_for(PruneMethod::kWanda, "2:4"), 30), HasSubstr("30"));
}

}  // namespace
}  // namespace pipeprune
