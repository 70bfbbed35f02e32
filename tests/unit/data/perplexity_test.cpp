#include "core/data/perplexity.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "core/common/error.h"

namespace pipeprune {
namespace {

TEST(MakeEvalWindows, DropsTheTailAndHonoursMaxWindows) {
  std::vector<int64_t> stream(25);
  for (int i = 0; i < 25; ++i) stream[static_cast<size_t>(i)] = i;
  const at::Tensor all = make_eval_windows(stream, 8, 0, "t");
  ASSERT_EQ(all.sizes(), (std::vector<int64_t>{3, 8}));
  EXPECT_EQ(all[2][7].item<int64_t>(), 23);
  EXPECT_EQ(make_eval_windows(stream, 8, 2, "t").size(0), 2);
  EXPECT_THROW(make_eval_windows(stream, 26, 0, "t"), ConfigError);
  EXPECT_THROW(make_eval_windows(stream, 1, 0, "t"), ConfigError);
}

TEST(PerplexityAccumulator, MatchesHandComputedNll) {
  // Vocabulary of 3, one window of 3 tokens: predictions for tokens 1 and 2.
  const at::Tensor logits = at::tensor({0.0f, 1.0f, 2.0f, 3.0f, 1.0f, 0.0f, 9.0f, 9.0f, 9.0f}).reshape({1, 3, 3});
  const at::Tensor tokens = at::tensor({0, 2, 0}, at::kLong).reshape({1, 3});
  PerplexityAccumulator accumulator;
  accumulator.add(logits, tokens);
  auto nll = [](std::vector<double> z, int target) {
    double denom = 0;
    for (double v : z) denom += std::exp(v);
    return -(z[static_cast<size_t>(target)] - std::log(denom));
  };
  const double expected = nll({0, 1, 2}, 2) + nll({3, 1, 0}, 0);
  EXPECT_NEAR(accumulator.total_nll(), expected, 1e-6);
  EXPECT_EQ(accumulator.predictions(), 2);
  EXPECT_NEAR(accumulator.perplexity(), std::exp(expected / 2), 1e-6);
}

TEST(PerplexityAccumulator, BatchedEqualsOneWindowAtATime) {
  at::manual_seed(0);
  const at::Tensor logits = at::randn({4, 6, 11});
  const at::Tensor tokens = at::randint(0, 11, {4, 6}, at::kLong);
  PerplexityAccumulator batched, single;
  batched.add(logits, tokens);
  for (int64_t b = 0; b < 4; ++b) single.add(logits.slice(0, b, b + 1), tokens.slice(0, b, b + 1));
  EXPECT_DOUBLE_EQ(batched.total_nll(), single.total_nll());
  EXPECT_EQ(batched.predictions(), 20);
}

}  // namespace
}  // namespace pipeprune
