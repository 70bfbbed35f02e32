// The fault plan the test hooks are built from: its syntax, and that each injected
// out-of-memory fires once while a failing layer fails every time.
#include "dist/fault_injection.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/common/error.h"
#include "unit/transport/transport_test_util.h"

namespace pipeprune {
namespace {

using ::testing::HasSubstr;

TEST(FaultPlan, Parse_LayerPassListAndFailingLayer) {
  const FaultPlan plan = FaultPlan::parse("1:stats,12:output,3:eval", "7", "hooks");
  ASSERT_EQ(plan.out_of_memory.size(), 3u);
  EXPECT_EQ(plan.out_of_memory[0], std::make_pair(int64_t{1}, LayerPass::kStats));
  EXPECT_EQ(plan.out_of_memory[1], std::make_pair(int64_t{12}, LayerPass::kOutput));
  EXPECT_EQ(plan.out_of_memory[2], std::make_pair(int64_t{3}, LayerPass::kEval));
  EXPECT_EQ(plan.fail_layer, 7);
  EXPECT_TRUE(FaultPlan::parse("", "", "hooks").empty());
}

TEST(FaultPlan, MalformedEntries_ConfigErrorNamingTheEntry) {
  for (const char* bad : {"1", "x:stats", "1:sleep", ":mask", "-1:eval"}) {
    EXPECT_THAT(testing::error_message<ConfigError>([&] { FaultPlan::parse(bad, "", "PIPEPRUNE_TEST_OOM"); }),
                HasSubstr(std::string("PIPEPRUNE_TEST_OOM: out-of-memory entry '") + bad))
        << bad;
  }
  EXPECT_THAT(testing::error_message<ConfigError>([] { FaultPlan::parse("", "two", "hooks"); }),
              HasSubstr("failing layer 'two'"));
}

TEST(FaultInjector, OutOfMemoryFiresOncePerEntry_FailingLayerEveryTime) {
  const auto faults = make_fault_injector(FaultPlan::parse("2:mask", "5", "hooks"));
  EXPECT_NO_THROW(faults->before_pass(2, LayerPass::kStats));
  EXPECT_NO_THROW(faults->before_pass(3, LayerPass::kMask));
  EXPECT_THAT(testing::error_message<OutOfMemoryError>([&] { faults->before_pass(2, LayerPass::kMask); }),
              HasSubstr("injected out-of-memory in layer 2, mask"));
  EXPECT_NO_THROW(faults->before_pass(2, LayerPass::kMask)) << "the retry of the same pass must succeed";
  EXPECT_NO_THROW(faults->before_layer(4));
  EXPECT_THROW(faults->before_layer(5), Error);
  EXPECT_THROW(faults->before_layer(5), Error);
}

TEST(FaultInjector, NoFaults_NeverThrows) {
  EXPECT_NO_THROW(no_faults().before_layer(0));
  EXPECT_NO_THROW(no_faults().before_pass(0, LayerPass::kLoad));
}

}  // namespace
}  // namespace pipeprune
