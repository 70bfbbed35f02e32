#include "core/prune/sparsity_pattern.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "core/common/error.h"
#include "core/prune/pruner.h"

namespace pipeprune {
namespace {

using ::testing::HasSubstr;

// The ConfigError message thrown by fn, or "" when it does not throw one.
template <typename Fn>
std::string config_error(Fn fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(SparsityPattern, Unstructured_KeepsSparsity) {
  const SparsityPattern p = SparsityPattern::parse("unstructured", 0.37);
  EXPECT_FALSE(p.is_nm());
  EXPECT_DOUBLE_EQ(p.sparsity, 0.37);
  EXPECT_EQ(p.to_string(), "unstructured");
  EXPECT_DOUBLE_EQ(SparsityPattern::parse("unstructured", 0.0).sparsity, 0.0);
}

TEST(SparsityPattern, NM_SetsGroupAndIgnoresGivenSparsity) {
  const SparsityPattern p = SparsityPattern::parse("2:4", 0.9);
  EXPECT_TRUE(p.is_nm());
  EXPECT_EQ(p.n, 2);
  EXPECT_EQ(p.m, 4);
  EXPECT_DOUBLE_EQ(p.sparsity, 0.5);
  EXPECT_EQ(p.to_string(), "2:4");
  const SparsityPattern q = SparsityPattern::parse("1:16", 0.5);
  EXPECT_EQ(q.to_string(), "1:16");
  EXPECT_DOUBLE_EQ(q.sparsity, 1.0 / 16.0);
}

TEST(SparsityPattern, SparsityOutsideUnitInterval_ConfigErrorNamingFlag) {
  for (double s : {1.0, 1.5, -0.01, std::numeric_limits<double>::quiet_NaN(),
                   std::numeric_limits<double>::infinity()}) {
    const std::string message = config_error([&] { SparsityPattern::parse("unstructured", s); });
    EXPECT_THAT(message, HasSubstr("--sparsity")) << "sparsity " << s;
  }
}

TEST(SparsityPattern, BadPattern_ConfigErrorNamingFlag) {
  for (const char* bad : {"4:4", "5:4", "0:4", "2:", ":4", "a:b", "2:4:8", " 2:4", "-1:4", "+2:4",
                          "", "Unstructured", "2/4", "2:99999999"}) {
    const std::string message = config_error([&] { SparsityPattern::parse(bad, 0.5); });
    EXPECT_THAT(message, HasSubstr("--pattern")) << "pattern '" << bad << "'";
  }
}

TEST(SparsityPattern, CheckColumns_NotMultipleOfM_ConfigErrorNamingTensor) {
  const SparsityPattern p = SparsityPattern::parse("2:4", 0.5);
  EXPECT_NO_THROW(p.check_columns(4096, "model.layers.0.mlp.up_proj.weight"));
  const std::string message =
      config_error([&] { p.check_columns(4098, "model.layers.0.mlp.up_proj.weight"); });
  EXPECT_THAT(message, HasSubstr("model.layers.0.mlp.up_proj.weight"));
  EXPECT_THAT(message, HasSubstr("4098"));
}

TEST(SparsityPattern, CheckColumns_Unstructured_AcceptsAnyWidth) {
  EXPECT_NO_THROW(SparsityPattern::parse("unstructured", 0.5).check_columns(4097, "w"));
}

TEST(PruneMethod, Parse_RoundTripsNames) {
  for (PruneMethod m : {PruneMethod::kMagnitude, PruneMethod::kWanda, PruneMethod::kSparseGPT}) {
    EXPECT_EQ(parse_prune_method(prune_method_name(m)), m);
  }
  EXPECT_STREQ(prune_method_name(PruneMethod::kSparseGPT), "sparsegpt");
}

TEST(PruneMethod, Unknown_ConfigErrorNamingFlag) {
  for (const char* bad : {"", "Wanda", "sparse-gpt", "movement"}) {
    EXPECT_THAT(config_error([&] { parse_prune_method(bad); }), HasSubstr("--method")) << bad;
  }
}

TEST(PruneMethod, StatisticsBytes_PerMethod) {
  EXPECT_EQ(pruner_statistics_bytes(PruneMethod::kMagnitude, 4096), 0);
  EXPECT_EQ(pruner_statistics_bytes(PruneMethod::kWanda, 4096), 4096 * 4);
  EXPECT_EQ(pruner_statistics_bytes(PruneMethod::kSparseGPT, 11008), int64_t{11008} * 11008 * 4);
}

}  // namespace
}  // namespace pipeprune
