// OWL's layer ratios (owl_layer_sparsity) on hand-worked densities: the min-max spread of 2
// lambda, the mean density 1 - S, the 0.01 clamp and the refusals; the profile's option checks.
#include "core/prune/sparsity_profile.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <numeric>

#include "core/common/error.h"
#include "support/expect_error.h"

namespace pipeprune {
namespace {

using ::testing::HasSubstr;

std::string config_error(const std::function<void()>& fn) { return testing::error_message<ConfigError>(fn); }

TEST(OwlLayerSparsity, HandWorked_MinMaxIntoTwoLambdaAroundTheTarget) {
  // D = 1..4, S 0.5, lambda 0.1: r' = (D - 1) * 0.2 / 3 = 0, 1/15, 2/15, 0.2; mean 0.1;
  // density = r' - 0.1 + 0.5 = 0.4 .. 0.6; s = 1 - density = 0.6, 8/15, 7/15, 0.4.
  const std::vector<double> s = owl_layer_sparsity({1, 2, 3, 4}, 0.5, 0.1);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_NEAR(s[0], 0.6, 1e-15);
  EXPECT_NEAR(s[1], 8.0 / 15, 1e-15);
  EXPECT_NEAR(s[2], 7.0 / 15, 1e-15);
  EXPECT_NEAR(s[3], 0.4, 1e-15);
  // More outliers, lower sparsity; the mean is the target.
  EXPECT_NEAR(std::accumulate(s.begin(), s.end(), 0.0) / 4, 0.5, 1e-15);
}

TEST(OwlLayerSparsity, NotCentredOnTheTarget_WhenTheDensitiesAreSkewed) {
  // D = 0, 0, 10, S 0.7, lambda 0.08: r' = 0, 0, 0.16, mean 0.16/3; s = 0.7 + 0.16/3 twice and
  // 0.7 + 0.16/3 - 0.16: the spread is 2 lambda but not [S - lambda, S + lambda].
  const std::vector<double> s = owl_layer_sparsity({0, 0, 10}, 0.7, 0.08);
  EXPECT_NEAR(s[0], 0.7 + 0.16 / 3, 1e-15);
  EXPECT_NEAR(s[1], 0.7 + 0.16 / 3, 1e-15);
  EXPECT_NEAR(s[2], 0.7 + 0.16 / 3 - 0.16, 1e-15);
}

TEST(OwlLayerSparsity, ClampsAtZeroTo001_AsTheOriginalDoes) {
  // D = 0, 10, S 0.05, lambda 0.5: densities 0.45 and 1.45, s = 0.55 and -0.45 -> 0.01.
  const std::vector<double> s = owl_layer_sparsity({0, 10}, 0.05, 0.5);
  EXPECT_NEAR(s[0], 0.55, 1e-15);
  EXPECT_EQ(s[1], 0.01);
}

TEST(OwlLayerSparsity, RefusesEqualDensitiesAndRatiosReachingOne) {
  EXPECT_THAT(config_error([] { owl_layer_sparsity({2.5, 2.5, 2.5}, 0.5, 0.08); }),
              HasSubstr("every layer has the same outlier density (2.5%)"));
  // D = 0, 10, S 0.95, lambda 0.5: s = 1.45 for the first layer.
  EXPECT_THAT(config_error([] { owl_layer_sparsity({0, 10}, 0.95, 0.5); }),
              HasSubstr("layer 0's sparsity comes to 1.45 (>= 1: every weight pruned); lower --owl-lambda or --sparsity"));
}

TEST(OwlLayerSparsity, LambdaZeroIsUniform) {
  for (double s : owl_layer_sparsity({1, 5, 2}, 0.6, 0.0)) EXPECT_NEAR(s, 0.6, 1e-15);
}

TEST(AppliedLayerSparsity, NmAndUniformUseThePatternsSparsity) {
  const SparsityPattern nm = SparsityPattern::parse("2:4", 0.7);
  EXPECT_EQ(applied_layer_sparsity(nm, {0.1, 0.9}, 2), (std::vector<double>{0.5, 0.5}));
  const SparsityPattern unstructured = SparsityPattern::parse("unstructured", 0.7);
  EXPECT_EQ(applied_layer_sparsity(unstructured, {}, 3), (std::vector<double>{0.7, 0.7, 0.7}));
  EXPECT_EQ(applied_layer_sparsity(unstructured, {0.6, 0.8}, 2), (std::vector<double>{0.6, 0.8}));
}

TEST(SparsityProfileValidate, NamesTheFlag) {
  const SparsityPattern unstructured = SparsityPattern::parse("unstructured", 0.5);
  SparsityProfile owl;
  owl.kind = SparsityProfile::Kind::kOwl;
  EXPECT_NO_THROW(owl.validate(unstructured, true, 5));
  EXPECT_THAT(config_error([&] { owl.validate(unstructured, /*calibrated=*/false); }),
              HasSubstr("use --method wanda or sparsegpt with it"));
  SparsityProfile bad = owl;
  bad.owl_lambda = -0.1;
  EXPECT_THAT(config_error([&] { bad.validate(unstructured, true); }), HasSubstr("--owl-lambda -0.1 must be"));
  bad = owl;
  bad.owl_m = 0;
  EXPECT_THAT(config_error([&] { bad.validate(unstructured, true); }), HasSubstr("--owl-m 0 must be"));
  bad = owl;
  bad.layer_sparsity = {0.5};
  EXPECT_THAT(config_error([&] { bad.validate(unstructured, true); }),
              HasSubstr("use it with --sparsity-profile explicit"));

  SparsityProfile list;
  list.kind = SparsityProfile::Kind::kExplicit;
  EXPECT_THAT(config_error([&] { list.validate(unstructured, false); }), HasSubstr("needs --layer-sparsity"));
  list.layer_sparsity = {0.5, 0.6, 1.0};
  EXPECT_THAT(config_error([&] { list.validate(unstructured, false); }),
              HasSubstr("layer 2's ratio 1 is not a fraction in [0, 1)"));
  list.layer_sparsity = {0.5, 0.6};
  EXPECT_NO_THROW(list.validate(unstructured, false, 2));
  EXPECT_THAT(config_error([&] { list.validate(unstructured, false, 5); }),
              HasSubstr("--layer-sparsity gives 2 ratios; the model has 5 decoder layers"));
  EXPECT_THAT(config_error([&] { list.validate(SparsityPattern::parse("2:4", 0.5), false); }),
              HasSubstr("--pattern 2:4 fixes N of every M"));
  EXPECT_THAT(config_error([] { parse_sparsity_profile("owls"); }), HasSubstr("--sparsity-profile 'owls'"));
}

}  // namespace
}  // namespace pipeprune
