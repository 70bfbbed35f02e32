// SparseGPT's blocked H^-1 factor against the reference LAPACK chain (core/prune/hinv_factor.h):
// the same matrix to float rounding, the same bytes at every thread count, the same errors, and
// a prune whose reconstruction error is the reference's to within rounding's effect.
#include "core/prune/hinv_factor.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/common/blas_threads.h"
#include "core/common/error.h"
#include "core/prune/pruner.h"
#include "support/gemm_threads.h"

namespace pipeprune {
namespace {

using ::testing::HasSubstr;

// A damped Hessian of correlated inputs with uneven column scales, as calibration gives.
at::Tensor hessian(int64_t cols, uint64_t seed) {
  at::manual_seed(seed);
  const at::Tensor mix = at::randn({cols, cols}) * 0.1 + at::eye(cols);
  const at::Tensor x = at::randn({4 * cols, cols}).matmul(mix) * (at::rand({1, cols}) + 0.1);
  at::Tensor h = x.t().matmul(x).mul_(2.0 / static_cast<double>(4 * cols));
  h.diagonal().add_(at::mean(at::diag(h)).mul(0.01));
  return h;
}

double max_abs(const at::Tensor& t) { return t.abs().max().item<double>(); }

// Sizes below one block, one block and a partial one, and several blocks.
TEST(HinvFactor, Blocked_IsTheReferencesFactorToRounding) {
  for (int64_t cols : {5, 256, 300, 700}) {
    SCOPED_TRACE(cols);
    const at::Tensor h = hessian(cols, 3);
    const at::Tensor reference = inverse_upper_factor(h, HinvFactor::kReference);
    const at::Tensor blocked = inverse_upper_factor(h, HinvFactor::kBlocked);
    ASSERT_EQ(blocked.sizes(), reference.sizes());
    EXPECT_TRUE(at::equal(blocked, blocked.triu())) << "not upper triangular";
    EXPECT_GT(at::diag(blocked).min().item<double>(), 0.0);
    // U^T U = H^-1, so U^T U H = I; and U is the reference's U.
    const at::Tensor identity = blocked.t().matmul(blocked).matmul(h.to(at::kDouble).to(at::kFloat));
    EXPECT_LT(max_abs(identity - at::eye(cols)), 1e-3);
    EXPECT_LT(max_abs(blocked - reference) / max_abs(reference), 1e-4);
  }
}

TEST(HinvFactor, Blocked_SameBytesAtEveryThreadCount) {
  if (blas_threads() == 0) GTEST_SKIP() << "the BLAS is not OpenBLAS";
  if (!testing::gemm_same_at_every_thread_count()) GTEST_SKIP() << testing::kGemmThreadsSkip;
  const at::Tensor h = hessian(700, 5);
  at::Tensor first;
  for (int threads : {1, 2, 3, 4}) {
    SCOPED_TRACE(threads);
    at::set_num_threads(threads);
    set_blas_threads(threads);
    const at::Tensor u = inverse_upper_factor(h, HinvFactor::kBlocked);
    if (!first.defined()) first = u;
    EXPECT_TRUE(at::equal(u, first));
  }
  at::set_num_threads(1);
  set_blas_threads(1);
}

TEST(HinvFactor, NotPositiveDefinite_SparseGptSaysWhatToDo) {
  at::Tensor h = hessian(300, 7);
  h[280][280] = -1.0;  // in the second block of the reversed matrix's order: a late failure
  for (HinvFactor factor : {HinvFactor::kReference, HinvFactor::kBlocked}) {
    SCOPED_TRACE(hinv_factor_name(factor));
    at::Tensor copy = h.clone();
    try {
      sparsegpt_inverse(copy, 0.0, factor);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr("not positive definite after damping"));
      EXPECT_THAT(e.what(), HasSubstr("raise --percdamp"));
    }
  }
}

TEST(HinvFactor, Names) {
  for (HinvFactor factor : {HinvFactor::kReference, HinvFactor::kBlocked}) {
    EXPECT_EQ(parse_hinv_factor(hinv_factor_name(factor)), factor);
  }
}

// What the factor is for: SparseGPT with the blocked factor prunes as many weights and leaves
// the layer's output error ||(W - W') X^T|| the reference's to 1%, with nearly the same mask.
TEST(HinvFactor, SparseGptWithBlockedFactor_MatchesTheReferencesQuality) {
  const int64_t rows = 96, cols = 600, tokens = 2400;
  at::manual_seed(11);
  const at::Tensor x = at::randn({tokens, cols}).matmul(at::randn({cols, cols}) * 0.1 + at::eye(cols)) *
                       (at::rand({1, cols}) + 0.1);
  const at::Tensor h0 = x.t().matmul(x).mul_(2.0 / static_cast<double>(tokens));
  const at::Tensor w0 = at::randn({rows, cols});
  at::Tensor pruned[2], masks[2];
  double error[2];
  for (int i = 0; i < 2; ++i) {
    at::Tensor w = w0.clone(), h = h0.clone();
    const SparseGptInverse inverse = sparsegpt_inverse(h, 0.01, i == 0 ? HinvFactor::kReference : HinvFactor::kBlocked);
    masks[i] = sparsegpt_prune(w, inverse, SparsityPattern::parse("unstructured", 0.5), 128);
    pruned[i] = w;
    error[i] = (w0 - w).matmul(x.t()).norm().item<double>();
  }
  EXPECT_EQ(masks[1].sum().item<int64_t>(), masks[0].sum().item<int64_t>());
  EXPECT_NEAR(error[1] / error[0], 1.0, 0.01);
  EXPECT_GT(masks[0].eq(masks[1]).to(at::kFloat).mean().item<double>(), 0.95);
}

}  // namespace
}  // namespace pipeprune
