#include "core/prune/calibration_stats.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>

#include "core/common/error.h"

namespace pipeprune {
namespace {

constexpr int64_t kBatch = 5, kTokens = 9, kCols = 12;

at::Tensor sample_inputs(uint64_t seed) {
  at::manual_seed(seed);
  return at::randn({kBatch, kTokens, kCols});
}

TEST(WandaStats, EqualsNaiveMeanOverSequencesOfSquaredNorms) {
  const at::Tensor x = sample_inputs(1);
  at::Tensor scaler = at::zeros({kCols});
  int64_t n = 0;
  add_wanda_batch(scaler, &n, x);
  EXPECT_EQ(n, kBatch);
  const at::Tensor xd = x.to(at::kDouble);
  const double* p = xd.data_ptr<double>();
  for (int64_t j = 0; j < kCols; ++j) {
    double mean = 0;
    for (int64_t b = 0; b < kBatch; ++b) {
      double norm2 = 0;
      for (int64_t t = 0; t < kTokens; ++t) {
        const double v = p[(b * kTokens + t) * kCols + j];
        norm2 += v * v;
      }
      mean += norm2 / kBatch;
    }
    EXPECT_NEAR(scaler[j].item<double>(), mean, 1e-5 * mean) << j;
  }
}

TEST(WandaStats, BatchedEqualsOneSequenceAtATime) {
  const at::Tensor x = sample_inputs(2);
  at::Tensor batched = at::zeros({kCols}), single = at::zeros({kCols}), flat = at::zeros({kCols});
  int64_t n_batched = 0, n_single = 0, n_flat = 0;
  add_wanda_batch(batched, &n_batched, x);
  for (int64_t b = 0; b < kBatch; ++b) add_wanda_batch(single, &n_single, x.slice(0, b, b + 1));
  for (int64_t b = 0; b < kBatch; ++b) add_wanda_batch(flat, &n_flat, x[b]);  // [tokens, cols]
  EXPECT_TRUE(at::equal(batched, single));
  EXPECT_TRUE(at::equal(batched, flat));
  EXPECT_EQ(n_single, kBatch);
  EXPECT_EQ(n_flat, kBatch);
}

TEST(WandaStats, HalfPrecisionInput_SameAsUpcast) {
  const at::Tensor x = sample_inputs(3).to(at::kBFloat16);
  at::Tensor a = at::zeros({kCols}), b = at::zeros({kCols});
  int64_t na = 0, nb = 0;
  add_wanda_batch(a, &na, x);
  add_wanda_batch(b, &nb, x.to(at::kFloat));
  EXPECT_TRUE(at::equal(a, b));
}

TEST(WandaStats, WrongColumnCount_Error) {
  at::Tensor scaler = at::zeros({kCols});
  int64_t n = 0;
  EXPECT_THROW(add_wanda_batch(scaler, &n, at::ones({2, 3, kCols + 1})), Error);
  EXPECT_THROW(add_wanda_batch(scaler, &n, at::ones({kCols})), Error);
  EXPECT_EQ(n, 0);
}

TEST(HessianStats, EqualsNaiveTwiceMeanOfXtX) {
  const at::Tensor x = sample_inputs(4);
  at::Tensor h = at::zeros({kCols, kCols});
  int64_t n = 0;
  add_hessian_batch(h, &n, x);
  const at::Tensor xd = x.to(at::kDouble);
  const double* p = xd.data_ptr<double>();
  for (int64_t i = 0; i < kCols; ++i) {
    for (int64_t j = 0; j < kCols; ++j) {
      double sum = 0;
      for (int64_t b = 0; b < kBatch; ++b)
        for (int64_t t = 0; t < kTokens; ++t)
          sum += p[(b * kTokens + t) * kCols + i] * p[(b * kTokens + t) * kCols + j];
      const double expected = 2.0 * sum / kBatch;
      EXPECT_NEAR(h[i][j].item<double>(), expected, 1e-4 * (1 + std::fabs(expected)));
    }
  }
}

TEST(HessianStats, BatchedEqualsOneSequenceAtATime) {
  const at::Tensor x = sample_inputs(5);
  at::Tensor batched = at::zeros({kCols, kCols}), single = at::zeros({kCols, kCols});
  int64_t n_batched = 0, n_single = 0;
  add_hessian_batch(batched, &n_batched, x.slice(0, 0, 2));
  add_hessian_batch(batched, &n_batched, x.slice(0, 2, kBatch));
  for (int64_t b = 0; b < kBatch; ++b) add_hessian_batch(single, &n_single, x.slice(0, b, b + 1));
  EXPECT_TRUE(at::equal(batched, single));
  EXPECT_EQ(n_batched, kBatch);
}

}  // namespace
}  // namespace pipeprune
