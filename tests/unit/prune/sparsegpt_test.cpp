#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/common/error.h"
#include "core/prune/calibration_stats.h"
#include "core/prune/pruner.h"
#include "unit/prune/naive_reference.h"

namespace pipeprune {
namespace {

using ::testing::HasSubstr;

// Correlated inputs [sequences, tokens, cols]: Gaussian rows mixed by a random matrix.
at::Tensor correlated_inputs(int64_t sequences, int64_t tokens, int64_t cols, uint64_t seed) {
  at::manual_seed(seed);
  const at::Tensor mix = at::eye(cols) + 0.5 * at::randn({cols, cols});
  return at::matmul(at::randn({sequences, tokens, cols}), mix);
}

at::Tensor hessian_of(const at::Tensor& inputs) {
  at::Tensor h = at::zeros({inputs.size(-1), inputs.size(-1)});
  int64_t n = 0;
  add_hessian_batch(h, &n, inputs);
  return h;
}

struct Outcome {
  int compared = 0;
  int skipped = 0;
};

// Runs sparsegpt_prune and the naive double version on several random layers; where no score
// sits within 1e-3 of a threshold, the masks must be equal and the kept weights close.
Outcome compare_with_naive(const char* pattern, double sparsity, int64_t blocksize) {
  const SparsityPattern p = SparsityPattern::parse(pattern, sparsity);
  Outcome outcome;
  for (uint64_t seed = 0; seed < 8; ++seed) {
    const int64_t rows = 12, cols = 32;
    const at::Tensor h = hessian_of(correlated_inputs(4, 64, cols, seed));
    at::manual_seed(1000 + seed);
    const at::Tensor w = at::randn({rows, cols});
    const naive::SparseGptResult expected =
        naive::sparsegpt(naive::from_tensor<double>(w), naive::from_tensor<double>(h), p.sparsity,
                         p.is_nm() ? p.n : 0, p.is_nm() ? p.m : 0, blocksize, 0.01);
    if (expected.min_gap < 1e-3) {
      ++outcome.skipped;
      continue;
    }
    ++outcome.compared;
    at::Tensor weight = w.clone(), hessian = h.clone();
    const at::Tensor mask = sparsegpt_prune(weight, hessian, p, blocksize, 0.01);
    EXPECT_TRUE(naive::mask_from_tensor(mask).v == expected.mask.v) << pattern << " seed " << seed;
    const at::Tensor diff = (weight.to(at::kDouble) - naive::to_tensor(expected.weight)).abs();
    EXPECT_LT(diff.max().item<double>(), 1e-3 * w.abs().max().item<double>())
        << pattern << " seed " << seed;
    EXPECT_TRUE(at::equal(weight == 0, mask)) << "pruned entries are exactly the zeros";
  }
  return outcome;
}

TEST(SparseGpt, Unstructured_MatchesNaiveDouble) {
  const Outcome o = compare_with_naive("unstructured", 0.5, 8);
  EXPECT_GE(o.compared, 4) << "skipped " << o.skipped;
  EXPECT_GE(compare_with_naive("unstructured", 0.3, 16).compared, 4);
  EXPECT_GE(compare_with_naive("unstructured", 0.5, 32).compared, 4);  // one block
  EXPECT_GE(compare_with_naive("unstructured", 0.5, 12).compared, 4);  // short last block
}

TEST(SparseGpt, NM_MatchesNaiveDouble) {
  EXPECT_GE(compare_with_naive("2:4", 0.5, 8).compared, 4);
  EXPECT_GE(compare_with_naive("4:8", 0.5, 16).compared, 4);
  EXPECT_GE(compare_with_naive("1:4", 0.5, 32).compared, 4);
}

TEST(SparseGpt, NM_ExactlyNPerGroup) {
  const at::Tensor h = hessian_of(correlated_inputs(4, 32, 64, 3));
  at::manual_seed(4);
  at::Tensor w = at::randn({20, 64});
  at::Tensor hessian = h.clone();
  const at::Tensor mask = sparsegpt_prune(w, hessian, SparsityPattern::parse("2:4", 0.5), 16, 0.01);
  EXPECT_TRUE(at::equal(mask.reshape({20, 16, 4}).sum(2), at::full({20, 16}, 2, at::kLong)));
}

TEST(SparseGpt, Unstructured_EachBlockPrunesItsShareAtLeast) {
  const at::Tensor h = hessian_of(correlated_inputs(4, 32, 48, 5));
  at::manual_seed(6);
  at::Tensor w = at::randn({10, 48});
  at::Tensor hessian = h.clone();
  const at::Tensor mask =
      sparsegpt_prune(w, hessian, SparsityPattern::parse("unstructured", 0.4), 16, 0.01);
  for (int64_t b = 0; b < 3; ++b) {
    // int(160 * 0.4) + 1 = 65: the threshold entry itself goes too (`<=`).
    EXPECT_GE(mask.slice(1, b * 16, b * 16 + 16).sum().item<int64_t>(), 65) << "block " << b;
  }
}

// ||W X^T - W' X^T||_F over all calibration tokens.
double output_error(const at::Tensor& w, const at::Tensor& pruned, const at::Tensor& x) {
  const at::Tensor flat = x.reshape({-1, x.size(-1)}).to(at::kDouble);
  return at::matmul(flat, (w - pruned).to(at::kDouble).t()).norm().item<double>();
}

TEST(SparseGpt, CorrelatedInputs_ReconstructsBetterThanWanda) {
  const int64_t rows = 64, cols = 128;
  const at::Tensor x = correlated_inputs(16, 32, cols, 9);
  at::manual_seed(10);
  const at::Tensor w = at::randn({rows, cols});
  for (const char* pattern : {"unstructured", "2:4"}) {
    PruneOptions options;
    options.pattern = SparsityPattern::parse(pattern, 0.5);
    options.blocksize = 32;
    options.method = PruneMethod::kSparseGPT;
    auto sparsegpt = make_linear_pruner(options, rows, cols, at::kCPU);
    options.method = PruneMethod::kWanda;
    auto wanda = make_linear_pruner(options, rows, cols, at::kCPU);
    sparsegpt->add_batch(x);
    wanda->add_batch(x);
    at::Tensor w_sparsegpt = w.clone(), w_wanda = w.clone();
    sparsegpt->prune(w_sparsegpt);
    wanda->prune(w_wanda);
    const double e_sparsegpt = output_error(w, w_sparsegpt, x);
    const double e_wanda = output_error(w, w_wanda, x);
    EXPECT_LT(e_sparsegpt, 0.9 * e_wanda) << pattern;  // measured ~0.75
    // Same sparsity, up to the one extra entry per block of SparseGPT's `<=` threshold.
    const int64_t zeros_sparsegpt = (w_sparsegpt == 0).sum().item<int64_t>();
    const int64_t zeros_wanda = (w_wanda == 0).sum().item<int64_t>();
    EXPECT_GE(zeros_sparsegpt, zeros_wanda) << pattern;
    EXPECT_LE(zeros_sparsegpt, zeros_wanda + cols / options.blocksize) << pattern;
    RecordProperty(std::string("error_ratio_") + pattern, std::to_string(e_sparsegpt / e_wanda));
  }
}

TEST(SparseGpt, DeadInputColumns_ZeroedMaskedAndFinite) {
  at::Tensor x = correlated_inputs(4, 32, 16, 11);
  x.select(2, 3).zero_();
  x.select(2, 9).zero_();
  at::Tensor hessian = hessian_of(x);
  ASSERT_EQ(hessian[3][3].item<float>(), 0.f);
  at::manual_seed(12);
  at::Tensor w = at::randn({8, 16});
  const at::Tensor mask =
      sparsegpt_prune(w, hessian, SparsityPattern::parse("unstructured", 0.25), 8, 0.01);
  EXPECT_TRUE(at::isfinite(w).all().item<bool>());
  for (int64_t j : {3, 9}) {
    EXPECT_TRUE(at::equal(w.select(1, j), at::zeros({8}))) << j;
    EXPECT_TRUE(mask.select(1, j).all().item<bool>()) << j;
    EXPECT_GT(hessian[j][j].item<float>(), 1.f) << "dead diagonal set to 1, then damped";
  }
}

std::string config_error(const char* pattern, int64_t blocksize, double percdamp) {
  at::Tensor w = at::randn({4, 16});
  at::Tensor h = at::eye(16);
  try {
    sparsegpt_prune(w, h, SparsityPattern::parse(pattern, 0.5), blocksize, percdamp);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(SparseGpt, BadOptions_ConfigErrorNamingFlag) {
  EXPECT_THAT(config_error("2:4", 6, 0.01), HasSubstr("--blocksize"));
  EXPECT_THAT(config_error("unstructured", 0, 0.01), HasSubstr("--blocksize"));
  EXPECT_THAT(config_error("unstructured", 8, -0.1), HasSubstr("--percdamp"));
}

TEST(SparseGpt, NotPositiveDefinite_ErrorSuggestsDamping) {
  at::Tensor w = at::randn({4, 8});
  at::Tensor h = -at::eye(8);
  try {
    sparsegpt_prune(w, h, SparsityPattern::parse("unstructured", 0.5), 8, 0.01);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("--percdamp"));
  }
}

}  // namespace
}  // namespace pipeprune
