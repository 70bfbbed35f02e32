#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "core/common/error.h"
#include "core/prune/pruner.h"
#include "unit/prune/naive_reference.h"

namespace pipeprune {
namespace {

SparsityPattern unstructured(double s) { return SparsityPattern::parse("unstructured", s); }

TEST(MagnitudeMask, Unstructured_EqualsNaiveGlobalThreshold) {
  for (uint64_t seed = 0; seed < 4; ++seed) {
    at::manual_seed(seed);
    // Integer weights (ties everywhere, signs mixed) and continuous ones.
    for (const at::Tensor& w : {at::randint(-4, 5, {17, 24}, at::kFloat), at::randn({17, 24})}) {
      for (double s : {0.0, 0.1, 0.37, 0.5, 0.9, 0.999}) {
        const naive::Mask expected = naive::magnitude_unstructured(naive::from_tensor<float>(w), s);
        EXPECT_TRUE(naive::mask_from_tensor(magnitude_mask(w, unstructured(s))).v == expected.v)
            << "seed " << seed << " s " << s;
      }
    }
  }
}

TEST(MagnitudeMask, Unstructured_PrunesOneExtraPlusTies) {
  // numel 8, s=0.5: threshold = sorted[4] = 5, so 5 entries go, not 4 (the reference's `<=`).
  const at::Tensor w = at::tensor({1.f, -2.f, 3.f, 4.f, -5.f, 6.f, 7.f, 8.f}).reshape({2, 4});
  const at::Tensor mask = magnitude_mask(w, unstructured(0.5));
  EXPECT_EQ(mask.sum().item<int64_t>(), 5);
  EXPECT_TRUE(mask[1][0].item<bool>());
  // Ties at the threshold all go: sorted[2] = 1 and four entries equal 1.
  const at::Tensor ties = at::tensor({1.f, -1.f, 1.f, 1.f, 2.f, 2.f, 2.f, 2.f}).reshape({2, 4});
  EXPECT_EQ(magnitude_mask(ties, unstructured(0.25)).sum().item<int64_t>(), 4);
}

TEST(MagnitudeMask, NM_ExactlyNSmallestPerGroup) {
  for (const char* pattern : {"2:4", "4:8", "1:4", "3:4"}) {
    const SparsityPattern p = SparsityPattern::parse(pattern, 0.5);
    at::manual_seed(7);
    const at::Tensor w = at::randint(-2, 3, {13, 32}, at::kFloat);
    const naive::Mask mask = naive::mask_from_tensor(magnitude_mask(w, p));
    const naive::Matrix<float> m = naive::from_tensor<float>(w);
    for (int64_t r = 0; r < m.rows; ++r) {
      for (int64_t g = 0; g < m.cols; g += p.m) {
        int64_t pruned = 0;
        float max_pruned = -1, min_kept = 1e30f;
        for (int64_t j = g; j < g + p.m; ++j) {
          const float a = std::fabs(m(r, j));
          pruned += mask(r, j);
          if (mask(r, j)) max_pruned = std::max(max_pruned, a);
          else min_kept = std::min(min_kept, a);
        }
        ASSERT_EQ(pruned, p.n) << pattern;
        ASSERT_LE(max_pruned, min_kept) << pattern;
      }
    }
  }
}

TEST(MagnitudeMask, NM_ColumnsNotMultipleOfM_ConfigError) {
  const at::Tensor w = at::ones({4, 10});
  try {
    magnitude_mask(w, SparsityPattern::parse("2:4", 0.5));
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("10 input columns"));
  }
}

TEST(MagnitudeMask, HalfPrecisionWeights_SameAsUpcast) {
  at::manual_seed(3);
  const at::Tensor w = at::randn({16, 32}).to(at::kBFloat16);
  for (const char* pattern : {"unstructured", "2:4"}) {
    const SparsityPattern p = SparsityPattern::parse(pattern, 0.5);
    EXPECT_TRUE(at::equal(magnitude_mask(w, p), magnitude_mask(w.to(at::kFloat), p))) << pattern;
  }
}

}  // namespace
}  // namespace pipeprune
