// OWL's layer outlier density on hand-worked weights and statistics: one mean and one count over
// every linear of the layer, strict ">", in percent; and on random linears against a naive
// count over the concatenated metric (the original's torch.cat + torch.mean).
#include "core/prune/outlier_density.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace pipeprune {
namespace {

std::vector<OutlierInput> hand_worked() {
  // A = |W| * sqrt(scaler): [[1, 4], [3, 8]] and [[4]]: sum 20 over 5 entries, mean 4.
  return {{at::tensor({1.f, -2.f, 3.f, 4.f}).reshape({2, 2}), at::tensor({1.f, 4.f})},
          {at::tensor({-4.f}).reshape({1, 1}), at::tensor({1.f})}};
}

TEST(LayerOutlierPercent, HandWorked_OneMeanOverEveryLinear) {
  EXPECT_DOUBLE_EQ(layer_outlier_percent(hand_worked(), 1.0), 20.0);  // > 4: the 8 only (4 is not > 4)
  EXPECT_DOUBLE_EQ(layer_outlier_percent(hand_worked(), 0.5), 80.0);  // > 2: 4, 3, 8, 4
  EXPECT_DOUBLE_EQ(layer_outlier_percent(hand_worked(), 2.0), 0.0);   // > 8: none (strict)
  // The first linear alone has mean 4 too, but the second's 4 no longer counts towards it.
  EXPECT_DOUBLE_EQ(layer_outlier_percent({hand_worked()[0]}, 1.0), 25.0);
}

TEST(LayerOutlierPercent, BfloatWeights_AreReadAsTheirFloatValues) {
  std::vector<OutlierInput> linears = hand_worked();
  for (auto& linear : linears) linear.weight = linear.weight.to(at::kBFloat16);
  EXPECT_DOUBLE_EQ(layer_outlier_percent(linears, 1.0), 20.0);
}

TEST(LayerOutlierPercent, RandomLinears_EqualANaiveCountOverTheConcatenation) {
  at::manual_seed(7);
  std::vector<OutlierInput> linears;
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{48, 32}, {16, 32}, {32, 80}, {80, 32}}) {
    // Heavy-tailed statistics, so some entries stand out.
    linears.push_back({at::randn({rows, cols}), at::randn({cols}).exp().pow(2)});
  }
  for (double m : {1.0, 3.0, 5.0}) {
    std::vector<at::Tensor> metrics;
    for (const auto& linear : linears) metrics.push_back((linear.weight.abs() * linear.scaler_row.sqrt()).flatten());
    const at::Tensor all = at::cat(metrics).to(at::kDouble);
    const double threshold = static_cast<float>(all.mean().item<double>()) * static_cast<float>(m);
    int64_t count = 0;
    const auto* data = all.data_ptr<double>();
    for (int64_t i = 0; i < all.numel(); ++i) count += data[i] > threshold ? 1 : 0;
    const double naive = static_cast<double>(count) / static_cast<double>(all.numel()) * 100;
    EXPECT_DOUBLE_EQ(layer_outlier_percent(linears, m), naive) << "M " << m;
    EXPECT_GT(count, 0) << "M " << m;
  }
}

}  // namespace
}  // namespace pipeprune
