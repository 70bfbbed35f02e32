// SparseGPT gives the same bytes at every thread count: OpenBLAS's threaded Cholesky kernels
// round differently per thread count (measured: up to 8e-6 in the factor at 172+ columns), so
// the chain runs on one OpenBLAS thread (core/common/blas_threads.h); GEMM, the rest of the
// sweep, does not depend on it where OpenBLAS's GEMM kernels do not (tests/support/gemm_threads.h).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "core/common/blas_threads.h"
#include "core/prune/pruner.h"
#include "support/gemm_threads.h"

namespace pipeprune {
namespace {

void use_threads(int threads) {
  at::set_num_threads(threads);
  set_blas_threads(threads);
}

at::Tensor hessian(int64_t cols, uint64_t seed) {
  at::manual_seed(seed);
  const at::Tensor x = at::randn({cols, 4 * cols}) * (at::rand({cols, 1}) + 0.1);
  return x.matmul(x.t());
}

TEST(ThreadIndependence, SparseGpt_SameBytesAtOneAndFourThreads) {
  if (blas_threads() == 0) GTEST_SKIP() << "the BLAS is not OpenBLAS";
  if (!testing::gemm_same_at_every_thread_count()) GTEST_SKIP() << testing::kGemmThreadsSkip;
  for (const char* pattern : {"unstructured", "2:4"}) {
    for (int64_t cols : {172, 384}) {
      SCOPED_TRACE(std::string(pattern) + " " + std::to_string(cols));
      const at::Tensor h = hessian(cols, 7), w = at::randn({96, cols});
      at::Tensor results[2];
      for (int i = 0; i < 2; ++i) {
        use_threads(i == 0 ? 1 : 4);
        at::Tensor weight = w.clone(), hess = h.clone();
        sparsegpt_prune(weight, hess, SparsityPattern::parse(pattern, 0.5), 128, 0.01);
        results[i] = weight;
      }
      EXPECT_TRUE(at::equal(results[0], results[1]));
    }
  }
  use_threads(1);
}

// The guard is what makes the difference: without it the factor itself differs.
TEST(ThreadIndependence, CholeskyAtFourThreads_DiffersWithoutTheGuard) {
  if (blas_threads() == 0) GTEST_SKIP() << "the BLAS is not OpenBLAS";
  const at::Tensor h = hessian(512, 9) + at::eye(512);
  use_threads(1);
  const at::Tensor one = at::linalg_cholesky(h);
  use_threads(4);
  const at::Tensor four = at::linalg_cholesky(h);
  at::Tensor guarded;
  {
    const BlasThreadsGuard guard(1);
    EXPECT_EQ(blas_threads(), 1);
    guarded = at::linalg_cholesky(h);
  }
  EXPECT_EQ(blas_threads(), 4);  // restored
  EXPECT_FALSE(at::equal(one, four));
  EXPECT_TRUE(at::equal(one, guarded));
  use_threads(1);
}

}  // namespace
}  // namespace pipeprune
