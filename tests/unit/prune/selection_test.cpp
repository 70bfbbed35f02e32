// The selections must give exactly the sets of the reference's full sort / CPU topk.
#include "core/prune/selection.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "unit/prune/naive_reference.h"

namespace pipeprune {
namespace {

// Small integers: most entries tie with many others.
at::Tensor tie_heavy(int64_t rows, int64_t cols, int64_t levels, uint64_t seed) {
  at::manual_seed(seed);
  return at::randint(0, levels, {rows, cols}, at::kFloat);
}

TEST(SortedValueAt, EveryIndex_EqualsFullSort) {
  const at::Tensor scores = tie_heavy(7, 13, 5, 1);
  std::vector<float> all(scores.data_ptr<float>(), scores.data_ptr<float>() + scores.numel());
  std::sort(all.begin(), all.end());
  for (int64_t i = 0; i < scores.numel(); ++i) {
    EXPECT_EQ(sorted_value_at(scores, i).item<float>(), all[static_cast<size_t>(i)]) << i;
  }
}

TEST(SortedValueAt, NaNSortsLast) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const at::Tensor scores = at::tensor({3.f, nan, 1.f, 2.f});
  EXPECT_EQ(sorted_value_at(scores, 2).item<float>(), 3.f);
  EXPECT_TRUE(std::isnan(sorted_value_at(scores, 3).item<float>()));
}

TEST(StableLowestPerRow, ManyTies_EqualsFullStableSort) {
  for (uint64_t seed = 0; seed < 6; ++seed) {
    const int64_t cols = 5 + static_cast<int64_t>(seed) * 7;
    const at::Tensor scores = tie_heavy(9, cols, 1 + static_cast<int64_t>(seed % 4), seed);
    const naive::Matrix<float> m = naive::from_tensor<float>(scores);
    for (int64_t k = 0; k <= cols; ++k) {
      const at::Tensor got = stable_lowest_per_row(scores, k);
      // Independent reference: std::stable_sort per row.
      EXPECT_TRUE(naive::mask_from_tensor(got).v == naive::stable_sort_prefix(m, k).v)
          << "seed " << seed << " k " << k;
      // The reference's own op: torch.sort(stable=True), first k indices scattered.
      const at::Tensor order = std::get<1>(at::sort(scores, c10::optional<bool>(true), 1, false));
      const at::Tensor expected =
          at::zeros_like(scores, at::kBool).scatter_(1, order.slice(1, 0, k), true);
      EXPECT_TRUE(at::equal(got, expected)) << "seed " << seed << " k " << k;
      EXPECT_TRUE(at::equal(got.sum(1), at::full({9}, k, at::kLong)));
    }
  }
}

TEST(StableLowestPerRow, NaNAndSignedZero_FollowStableSort) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const at::Tensor scores = at::tensor({nan, 0.f, -0.f, nan, 1.f, 0.f}).reshape({1, 6});
  const auto mask_at = [&](int64_t k) {
    const at::Tensor m = stable_lowest_per_row(scores, k);
    return std::vector<bool>(m.data_ptr<bool>(), m.data_ptr<bool>() + 6);
  };
  // Stable order: 0.f(1), -0.f(2), 0.f(5), 1.f(4), NaN(0), NaN(3).
  EXPECT_EQ(mask_at(2), (std::vector<bool>{false, true, true, false, false, false}));
  EXPECT_EQ(mask_at(4), (std::vector<bool>{false, true, true, false, true, true}));
  EXPECT_EQ(mask_at(5), (std::vector<bool>{true, true, true, false, true, true}));
}

// The reference's own op: torch.sort(stable=True) per row, first k indices scattered.
at::Tensor stable_sort_prefix(const at::Tensor& scores, int64_t k) {
  const at::Tensor order = std::get<1>(at::sort(scores, c10::optional<bool>(true), 1, false));
  return at::zeros_like(scores, at::kBool).scatter_(1, order.slice(1, 0, k), true);
}

// Many values per histogram bucket (weights of one scale) and values over many octaves, on more
// than one parallel chunk: the global k-th value equals the full sort's at spread indices.
TEST(SortedValueAt, LargeTensorsAcrossBuckets_EqualsFullSort) {
  at::manual_seed(5);
  const at::Tensor narrow = at::randn({300, 700}).mul_(0.02f).abs_();
  const at::Tensor wide = at::randn({300, 700}).mul_(8).exp_().mul_(at::randn({300, 700}).sign());
  for (const at::Tensor& scores : {narrow, wide}) {
    const at::Tensor sorted = std::get<0>(at::sort(scores.flatten()));
    for (int64_t index : {int64_t{0}, int64_t{1}, int64_t{12345}, scores.numel() / 2, scores.numel() - 2,
                          scores.numel() - 1}) {
      EXPECT_EQ(sorted_value_at(scores, index).item<float>(), sorted[index].item<float>()) << index;
    }
  }
}

// The fused Wanda selection: the same mask as sorting the materialized |W| * scale, on rows of
// tied scores, of weight-like values, and with NaN and signed zeros.
TEST(StableLowestScaledPerRow, EqualsStableSortOfTheScores) {
  at::manual_seed(9);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  at::Tensor special = at::randn({16, 96});
  special.view({-1}).index_put_({at::randint(0, 16 * 96, {40})}, nan);
  special.view({-1}).index_put_({at::randint(0, 16 * 96, {80})}, 0.f);
  special.view({-1}).index_put_({at::randint(0, 16 * 96, {80})}, -0.f);
  const std::vector<std::pair<at::Tensor, at::Tensor>> cases = {
      {tie_heavy(12, 40, 3, 2).sub_(1), at::ones({40})},
      {tie_heavy(12, 40, 4, 3), tie_heavy(1, 40, 3, 4).reshape({40})},
      {at::randn({64, 2048}).mul_(0.02f), at::rand({2048}).add_(0.1f).sqrt_()},
      {special, at::rand({96}).add_(0.5f)},
  };
  for (size_t c = 0; c < cases.size(); ++c) {
    const auto& [weight, scale] = cases[c];
    const at::Tensor scores = at::mul(at::abs(weight), scale.reshape({1, -1}));
    const int64_t cols = weight.size(1);
    for (int64_t k : {int64_t{0}, int64_t{1}, cols / 3, cols / 2, cols - 1, cols}) {
      const at::Tensor got = stable_lowest_scaled_per_row(weight, scale, k);
      EXPECT_TRUE(at::equal(got, stable_sort_prefix(scores, k))) << "case " << c << " k " << k;
      EXPECT_TRUE(at::equal(got, stable_lowest_per_row(scores, k))) << "case " << c << " k " << k;
    }
  }
}

TEST(StableLowestPerRow, WeightLikeRows_EqualsFullStableSort) {
  at::manual_seed(13);
  const at::Tensor scores = at::randn({32, 3000}).mul_(0.02f).abs_();
  for (int64_t k : {int64_t{1}, int64_t{1499}, int64_t{1500}, int64_t{2999}}) {
    EXPECT_TRUE(at::equal(stable_lowest_per_row(scores, k), stable_sort_prefix(scores, k))) << k;
  }
}

// The reference loop: for ii % m == 0, scatter topk(largest=False) indices of the group.
at::Tensor reference_nm(const at::Tensor& scores, int64_t n, int64_t m) {
  at::Tensor mask = at::zeros_like(scores, at::kBool);
  for (int64_t ii = 0; ii < scores.size(1); ii += m) {
    const at::Tensor tmp = scores.slice(1, ii, ii + m);
    mask.scatter_(1, std::get<1>(at::topk(tmp, n, 1, /*largest=*/false)) + ii, true);
  }
  return mask;
}

TEST(TopkLowestPerGroup, ManyTies_EqualsCpuTopk) {
  const std::vector<std::pair<int64_t, int64_t>> patterns = {
      {2, 4}, {4, 8}, {1, 4}, {3, 4}, {1, 2}, {6, 8}, {8, 16}, {16, 32}, {2, 128}, {1, 64}};
  for (const auto& [n, m] : patterns) {
    for (int64_t levels : {1, 2, 3, 7}) {
      const at::Tensor scores = tie_heavy(40, 4 * m, levels, static_cast<uint64_t>(n * 1000 + m));
      const at::Tensor got = topk_lowest_per_group(scores, n, m);
      EXPECT_TRUE(at::equal(got, reference_nm(scores, n, m)))
          << n << ":" << m << " levels " << levels;
      // Naive properties: exactly n per group, and no kept entry below a pruned one.
      const naive::Matrix<float> s = naive::from_tensor<float>(scores);
      const naive::Mask k = naive::mask_from_tensor(got);
      for (int64_t r = 0; r < s.rows; ++r) {
        for (int64_t g = 0; g < s.cols; g += m) {
          int64_t pruned = 0;
          float max_pruned = -1e30f, min_kept = 1e30f;
          for (int64_t j = g; j < g + m; ++j) {
            pruned += k(r, j) ? 1 : 0;
            if (k(r, j)) max_pruned = std::max(max_pruned, s(r, j));
            else min_kept = std::min(min_kept, s(r, j));
          }
          ASSERT_EQ(pruned, n);
          ASSERT_LE(max_pruned, min_kept);
        }
      }
    }
  }
}

TEST(TopkLowestPerGroup, DistinctValuesNaNAndSignedZeros_EqualsCpuTopk) {
  at::manual_seed(21);
  at::Tensor scores = at::randn({64, 64});
  // Sprinkle NaNs (topk ranks them largest) and signed zeros (a tie topk must break its way).
  scores.view({-1}).index_put_({at::randint(0, 64 * 64, {40})},
                               std::numeric_limits<float>::quiet_NaN());
  scores.view({-1}).index_put_({at::randint(0, 64 * 64, {80})}, 0.f);
  scores.view({-1}).index_put_({at::randint(0, 64 * 64, {80})}, -0.f);
  for (const auto& [n, m] : std::vector<std::pair<int64_t, int64_t>>{
           {2, 4}, {1, 4}, {3, 4}, {4, 8}, {1, 2}, {5, 8}, {8, 16}, {1, 64}}) {
    EXPECT_TRUE(at::equal(topk_lowest_per_group(scores, n, m), reference_nm(scores, n, m)))
        << n << ":" << m;
  }
}

// Groups of up to 4 go by a table of topk's choices: every group of values from
// {-1, -0, +0, 1, 2, NaN} (all 6^m of them, one per row) against CPU topk, for every n.
TEST(TopkLowestPerGroup, EverySmallGroupOfTiesNaNAndZeros_EqualsCpuTopk) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> values = {-1.f, -0.f, 0.f, 1.f, 2.f, nan};
  for (int64_t m = 1; m <= 4; ++m) {
    int64_t rows = 1;
    for (int64_t j = 0; j < m; ++j) rows *= static_cast<int64_t>(values.size());
    at::Tensor scores = at::empty({rows, m});
    for (int64_t r = 0; r < rows; ++r) {
      int64_t digits = r;
      for (int64_t j = 0; j < m; ++j, digits /= static_cast<int64_t>(values.size())) {
        scores[r][j] = values[static_cast<size_t>(digits % static_cast<int64_t>(values.size()))];
      }
    }
    for (int64_t n = 1; n <= m; ++n) {
      EXPECT_TRUE(at::equal(topk_lowest_per_group(scores, n, m), reference_nm(scores, n, m))) << n << ":" << m;
    }
  }
}

// The fused Wanda N:M selection: CPU topk of the materialized |W| * scale, by table (m <= 4)
// and by topk's own algorithm (larger groups).
TEST(TopkLowestScaledPerGroup, EqualsCpuTopkOfTheScores) {
  at::manual_seed(31);
  at::Tensor weight = tie_heavy(24, 64, 3, 32).sub_(1);
  weight.view({-1}).index_put_({at::randint(0, 24 * 64, {30})}, std::numeric_limits<float>::quiet_NaN());
  weight.view({-1}).index_put_({at::randint(0, 24 * 64, {30})}, -0.f);
  const at::Tensor scale = tie_heavy(1, 64, 2, 33).reshape({64}).add_(1);
  const at::Tensor scores = at::mul(at::abs(weight), scale.reshape({1, -1}));
  for (const auto& [n, m] : std::vector<std::pair<int64_t, int64_t>>{{2, 4}, {1, 4}, {3, 4}, {1, 2}, {4, 8}, {2, 8}}) {
    EXPECT_TRUE(at::equal(topk_lowest_scaled_per_group(weight, scale, n, m), reference_nm(scores, n, m)))
        << n << ":" << m;
  }
}

// Hand-checked against torch 1.13 CPU topk: ties do not simply go to the higher index.
TEST(TopkLowestPerGroup, TwoOfFourTies_AsCpuTopk) {
  const at::Tensor scores =
      at::tensor({1.f, 1.f, 1.f, 1.f, 0.f, 1.f, 1.f, 1.f, 0.f, 1.f, 2.f, 1.f}).reshape({3, 4});
  const at::Tensor mask = topk_lowest_per_group(scores, 2, 4);
  const at::Tensor expected = at::tensor({0, 0, 1, 1, 1, 0, 1, 0, 1, 1, 0, 0}).reshape({3, 4});
  EXPECT_TRUE(at::equal(mask, expected.to(at::kBool)));
}

}  // namespace
}  // namespace pipeprune
