#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/common/error.h"
#include "core/prune/pruner.h"
#include "unit/prune/naive_reference.h"

namespace pipeprune {
namespace {

SparsityPattern unstructured(double s) { return SparsityPattern::parse("unstructured", s); }

// Integer weights and perfect-square scalers: every score is an exact small integer, so ties
// abound and float sums carry no rounding.
struct Layer {
  at::Tensor weight;
  at::Tensor scaler;
};
Layer integer_layer(int64_t rows, int64_t cols, uint64_t seed) {
  at::manual_seed(seed);
  const at::Tensor w = at::randint(-4, 5, {rows, cols}, at::kFloat);
  const at::Tensor root = at::randint(0, 4, {cols}, at::kFloat);
  return {w, root * root};
}

std::vector<float> to_vector(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

TEST(WandaMask, Unstructured_EqualsNaiveStableSort) {
  for (uint64_t seed = 0; seed < 4; ++seed) {
    const Layer layer = integer_layer(11, 40, seed);
    const naive::Matrix<float> scores =
        naive::wanda_scores(naive::from_tensor<float>(layer.weight), to_vector(layer.scaler));
    for (double s : {0.0, 0.1, 0.37, 0.5, 0.75, 0.99}) {
      const at::Tensor mask = wanda_mask(layer.weight, layer.scaler, unstructured(s), false);
      const auto k = static_cast<int64_t>(40 * s);
      EXPECT_TRUE(naive::mask_from_tensor(mask).v == naive::stable_sort_prefix(scores, k).v)
          << "seed " << seed << " s " << s;
      // Exactly int(cols*s) per row, ties or not.
      EXPECT_TRUE(at::equal(mask.sum(1), at::full({11}, k, at::kLong))) << "s " << s;
    }
  }
}

TEST(WandaMask, Unstructured_ScoreUsesActivationNorm) {
  // Row [1, 2] with scaler [9, 1]: scores [3, 2], so Wanda prunes column 1, magnitude column 0.
  const at::Tensor w = at::tensor({1.f, 2.f}).reshape({1, 2});
  const at::Tensor scaler = at::tensor({9.f, 1.f});
  const at::Tensor mask = wanda_mask(w, scaler, unstructured(0.5), false);
  EXPECT_FALSE(mask[0][0].item<bool>());
  EXPECT_TRUE(mask[0][1].item<bool>());
}

TEST(WandaMask, NM_ExactlyNSmallestScoresPerGroup) {
  for (const char* pattern : {"2:4", "4:8", "1:4"}) {
    const SparsityPattern p = SparsityPattern::parse(pattern, 0.5);
    const Layer layer = integer_layer(9, 32, 11);
    const naive::Matrix<float> scores =
        naive::wanda_scores(naive::from_tensor<float>(layer.weight), to_vector(layer.scaler));
    const naive::Mask mask =
        naive::mask_from_tensor(wanda_mask(layer.weight, layer.scaler, p, false));
    for (int64_t r = 0; r < scores.rows; ++r) {
      for (int64_t g = 0; g < scores.cols; g += p.m) {
        int64_t pruned = 0;
        float max_pruned = -1, min_kept = 1e30f;
        for (int64_t j = g; j < g + p.m; ++j) {
          pruned += mask(r, j);
          if (mask(r, j)) max_pruned = std::max(max_pruned, scores(r, j));
          else min_kept = std::min(min_kept, scores(r, j));
        }
        ASSERT_EQ(pruned, p.n) << pattern;
        ASSERT_LE(max_pruned, min_kept) << pattern;
      }
    }
  }
}

TEST(WandaMask, Variant_EqualsNaiveBisection) {
  int searched = 0;
  for (uint64_t seed = 0; seed < 5; ++seed) {
    const Layer layer = integer_layer(24, 64, 100 + seed);
    const naive::Matrix<float> scores =
        naive::wanda_scores(naive::from_tensor<float>(layer.weight), to_vector(layer.scaler));
    for (double s : {0.2, 0.3, 0.5, 0.6}) {
      const naive::VariantResult expected = naive::wanda_variant(scores, s);
      searched += expected.steps > 0 ? 1 : 0;
      const at::Tensor mask = wanda_mask(layer.weight, layer.scaler, unstructured(s), true);
      EXPECT_TRUE(naive::mask_from_tensor(mask).v == expected.mask.v)
          << "seed " << seed << " s " << s << " alpha " << expected.alpha;
    }
  }
  EXPECT_GT(searched, 10);  // the bisection actually moved alpha in most cases
}

TEST(WandaMask, Variant_ContinuousScores_ReachesTargetOrNarrowInterval) {
  at::manual_seed(5);
  const at::Tensor w = at::randn({64, 256});
  const at::Tensor scaler = at::rand({256}) * 4;
  for (double s : {0.3, 0.5}) {
    const at::Tensor mask = wanda_mask(w, scaler, unstructured(s), true);
    const double sparsity = mask.sum().item<double>() / static_cast<double>(mask.numel());
    EXPECT_NEAR(sparsity, s, 0.01) << s;
    // Per row, the pruned set is a prefix of the sorted scores (everything <= a row threshold).
    const at::Tensor scores = at::abs(w) * at::sqrt(scaler).reshape({1, -1});
    const at::Tensor max_pruned = at::where(mask, scores, at::zeros_like(scores)).amax(1);
    const at::Tensor min_kept =
        at::where(mask, at::full_like(scores, 1e30), scores).amin(1);
    EXPECT_TRUE(at::all(max_pruned < min_kept).item<bool>());
  }
}

TEST(WandaMask, Variant_RowWithNaN_PrunesNothingThere) {
  // The reference would fail on such a row (gather at index -1); here it keeps the row whole.
  at::manual_seed(8);
  at::Tensor w = at::randn({8, 64});
  w[2][5] = std::numeric_limits<float>::quiet_NaN();
  const at::Tensor mask = wanda_mask(w, at::ones({64}), unstructured(0.5), true);
  EXPECT_EQ(mask[2].sum().item<int64_t>(), 0);
  EXPECT_GT(mask.sum().item<int64_t>(), 7 * 64 / 3);
}

TEST(WandaMask, ScalerOfWrongLength_Error) {
  EXPECT_THROW(wanda_mask(at::ones({2, 4}), at::ones({3}), unstructured(0.5), false), Error);
}

}  // namespace
}  // namespace pipeprune
