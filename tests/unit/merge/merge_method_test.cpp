#include "core/merge/merge_method.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/common/error.h"
#include "support/expect_error.h"

namespace pipeprune {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::error_message;

TEST(ParseMergeMethod, EveryName_RoundTrips) {
  for (MergeMethod m : {MergeMethod::kLinear, MergeMethod::kTaskArithmetic, MergeMethod::kTies,
                        MergeMethod::kDareTies, MergeMethod::kDareLinear}) {
    EXPECT_EQ(parse_merge_method(merge_method_name(m)), m) << merge_method_name(m);
  }
  EXPECT_EQ(merge_method_name(MergeMethod::kTaskArithmetic), "task_arithmetic");
  EXPECT_EQ(merge_method_name(MergeMethod::kDareTies), "dare_ties");
}

TEST(ParseMergeMethod, DareTaskArithmetic_IsDareLinear) {
  EXPECT_EQ(parse_merge_method("dare_task_arithmetic"), MergeMethod::kDareLinear);
  EXPECT_EQ(merge_method_name(MergeMethod::kDareLinear), "dare_linear");
}

TEST(ParseMergeMethod, Unknown_ConfigErrorNamesFlagAndChoices) {
  for (const std::string bad : {"slerp", "TIES", "", "ties "}) {
    EXPECT_THAT(error_message<ConfigError>([&] { parse_merge_method(bad); }),
                AllOf(HasSubstr("--method"), HasSubstr("'" + bad + "'"), HasSubstr("dare_linear")));
  }
}

TEST(ParseRescale, Names_AndUnknown) {
  EXPECT_EQ(parse_rescale("none"), Rescale::kNone);
  EXPECT_EQ(parse_rescale("l1"), Rescale::kL1);
  EXPECT_EQ(parse_rescale("inv_density"), Rescale::kInvDensity);
  EXPECT_THAT(error_message<ConfigError>([] { parse_rescale("true"); }),
              AllOf(HasSubstr("--rescale"), HasSubstr("'true'"), HasSubstr("inv_density")));
}

TEST(ParseConsensus, SumCount_NoneIsNotAFlagValue) {
  EXPECT_EQ(parse_consensus("sum"), Consensus::kSum);
  EXPECT_EQ(parse_consensus("count"), Consensus::kCount);
  EXPECT_THAT(error_message<ConfigError>([] { parse_consensus("none"); }),
              AllOf(HasSubstr("--consensus"), HasSubstr("'none'")));
  EXPECT_THAT(error_message<ConfigError>([] { parse_consensus("majority"); }), HasSubstr("--consensus"));
}

// mergekit's registry.py, row by row.
TEST(DefaultSettings, MatchesMergekitTable) {
  struct Row {
    MergeMethod method;
    bool normalize;
    Rescale rescale;
    Consensus consensus;
  };
  const std::vector<Row> table = {
      {MergeMethod::kLinear, true, Rescale::kNone, Consensus::kNone},
      {MergeMethod::kTaskArithmetic, false, Rescale::kNone, Consensus::kNone},
      {MergeMethod::kTies, true, Rescale::kNone, Consensus::kSum},
      {MergeMethod::kDareTies, false, Rescale::kL1, Consensus::kSum},
      {MergeMethod::kDareLinear, false, Rescale::kL1, Consensus::kNone},
  };
  for (const Row& row : table) {
    const MergeSettings s = default_settings(row.method);
    const std::string name = merge_method_name(row.method);
    EXPECT_EQ(s.method, row.method) << name;
    EXPECT_EQ(s.normalize, row.normalize) << name;
    EXPECT_EQ(s.rescale, row.rescale) << name;
    EXPECT_EQ(s.consensus, row.consensus) << name;
    EXPECT_EQ(s.lambda, 1.0) << name;
    EXPECT_EQ(s.seed, 0u) << name;
  }
}

TEST(MethodTraits, BaseDensityConsensus) {
  EXPECT_FALSE(uses_base(MergeMethod::kLinear));
  EXPECT_FALSE(uses_density(MergeMethod::kLinear));
  EXPECT_FALSE(uses_consensus(MergeMethod::kLinear));
  EXPECT_TRUE(uses_base(MergeMethod::kTaskArithmetic));
  EXPECT_FALSE(uses_density(MergeMethod::kTaskArithmetic));
  EXPECT_FALSE(uses_consensus(MergeMethod::kTaskArithmetic));
  for (MergeMethod m : {MergeMethod::kTies, MergeMethod::kDareTies, MergeMethod::kDareLinear}) {
    EXPECT_TRUE(uses_base(m));
    EXPECT_TRUE(uses_density(m));
  }
  EXPECT_TRUE(uses_consensus(MergeMethod::kTies));
  EXPECT_TRUE(uses_consensus(MergeMethod::kDareTies));
  EXPECT_FALSE(uses_consensus(MergeMethod::kDareLinear));
}

TEST(ValidateMerge, GoodJobs_Pass) {
  EXPECT_NO_THROW(validate_merge(default_settings(MergeMethod::kTies), {{0.5, 0.3}, {0.5, 1.0}}));
  EXPECT_NO_THROW(validate_merge(default_settings(MergeMethod::kLinear), {{1.0, 1.0}}));
  // Without normalize, weights summing to 0 are fine (a difference of models).
  MergeSettings linear = default_settings(MergeMethod::kLinear);
  linear.normalize = false;
  EXPECT_NO_THROW(validate_merge(linear, {{1.0, 1.0}, {-1.0, 1.0}}));
  // Task arithmetic's weights may sum to 0: the divisor guard makes that 1.
  MergeSettings ta = default_settings(MergeMethod::kTaskArithmetic);
  ta.normalize = true;
  EXPECT_NO_THROW(validate_merge(ta, {{1.0, 1.0}, {-1.0, 1.0}}));
  MergeSettings count = default_settings(MergeMethod::kDareTies);
  count.consensus = Consensus::kCount;
  EXPECT_NO_THROW(validate_merge(count, {{1.0, 0.1}}));
}

TEST(ValidateMerge, NoModels_NamesWeights) {
  EXPECT_THAT(error_message<ConfigError>([] { validate_merge(default_settings(MergeMethod::kTies), {}); }),
              HasSubstr("--weights"));
}

TEST(ValidateMerge, DensityOutsideZeroOne_NamesDensity) {
  for (double d : {0.0, -0.1, 1.5, std::numeric_limits<double>::quiet_NaN()}) {
    EXPECT_THAT(error_message<ConfigError>(
                    [&] { validate_merge(default_settings(MergeMethod::kDareTies), {{1.0, 0.5}, {1.0, d}}); }),
                AllOf(HasSubstr("--density"), HasSubstr("model 1")))
        << d;
  }
}

TEST(ValidateMerge, ConsensusOnMethodWithoutElection_NamesConsensus) {
  for (MergeMethod m : {MergeMethod::kLinear, MergeMethod::kTaskArithmetic, MergeMethod::kDareLinear}) {
    MergeSettings s = default_settings(m);
    s.consensus = Consensus::kSum;
    EXPECT_THAT(error_message<ConfigError>([&] { validate_merge(s, {{1.0, 1.0}}); }),
                AllOf(HasSubstr("--consensus"), HasSubstr(merge_method_name(m))));
  }
}

TEST(ValidateMerge, NonFiniteLambda_NamesLambda) {
  MergeSettings s = default_settings(MergeMethod::kTaskArithmetic);
  for (double l : {std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
    s.lambda = l;
    EXPECT_THAT(error_message<ConfigError>([&] { validate_merge(s, {{1.0, 1.0}}); }), HasSubstr("--lambda"));
  }
}

TEST(ValidateMerge, NonFiniteWeight_NamesWeights) {
  EXPECT_THAT(error_message<ConfigError>([] {
                validate_merge(default_settings(MergeMethod::kTies),
                               {{1.0, 1.0}, {std::numeric_limits<double>::infinity(), 1.0}});
              }),
              AllOf(HasSubstr("--weights"), HasSubstr("model 1")));
}

TEST(ValidateMerge, LinearNormalizedZeroWeightSum_NamesWeights) {
  EXPECT_THAT(error_message<ConfigError>([] {
                validate_merge(default_settings(MergeMethod::kLinear), {{0.5, 1.0}, {0.25, 1.0}, {-0.75, 1.0}});
              }),
              AllOf(HasSubstr("--weights"), HasSubstr("normalize")));
}

}  // namespace
}  // namespace pipeprune
