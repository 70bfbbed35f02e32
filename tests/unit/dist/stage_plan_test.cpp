#include "dist/stage_plan.h"

#include <gtest/gtest.h>

#include "core/common/error.h"
#include "dist/budget.h"

namespace pipeprune {
namespace {

ModelFootprint uniform_model(int layers, int64_t layer_bytes, int64_t embedding = 0, int64_t head = 0) {
  ModelFootprint model;
  model.layer_bytes.assign(static_cast<size_t>(layers), layer_bytes);
  model.embedding_bytes = embedding;
  model.head_bytes = head;
  return model;
}

std::vector<RankResources> budgets(std::vector<int64_t> bytes) {
  std::vector<RankResources> ranks;
  for (int64_t b : bytes) ranks.push_back(RankResources{"host", "cpu", b});
  return ranks;
}

// Every layer owned exactly once, in order, every rank at least one layer.
void expect_valid(const StagePlan& plan, int64_t n_layers) {
  int64_t next = 0;
  for (const Stage& s : plan.stages) {
    EXPECT_EQ(s.first_layer, next);
    EXPECT_GE(s.n_layers(), 1);
    next = s.end_layer;
  }
  EXPECT_EQ(next, n_layers);
  EXPECT_TRUE(plan.stages.front().has_embedding);
  EXPECT_TRUE(plan.stages.back().has_head);
}

TEST(PlanStages, EqualBudgets_SplitEvenly) {
  const StagePlan plan = plan_stages(uniform_model(8, 100), budgets({1000, 1000}));
  expect_valid(plan, 8);
  EXPECT_EQ(plan.stages[0].n_layers(), 4);
  EXPECT_EQ(plan.stages[1].n_layers(), 4);
}

TEST(PlanStages, OneRank_OwnsEverything) {
  const StagePlan plan = plan_stages(uniform_model(5, 10, 7, 3), budgets({1}));
  expect_valid(plan, 5);
  EXPECT_EQ(plan.stages[0].bytes_weights, 60);
  EXPECT_TRUE(plan.stages[0].has_head);
}

TEST(PlanStages, UnevenBudgets_LayersFollowBudgets) {
  // Rank 1 has three times rank 0's memory: it should hold about three quarters of the layers.
  const StagePlan plan = plan_stages(uniform_model(12, 100), budgets({1000, 3000}));
  expect_valid(plan, 12);
  EXPECT_EQ(plan.stages[0].n_layers(), 3);
  EXPECT_EQ(plan.stages[1].n_layers(), 9);
}

TEST(FormatStagePlan, LayerRangesWithEmbeddingAndHead) {
  // Five layers over three ranks with budgets 2:2:1: layers 0-1, 2-3 and a single layer 4.
  const StagePlan plan = plan_stages(uniform_model(5, 100), budgets({2000, 2000, 1000}));
  const std::string table = format_stage_plan(plan);
  EXPECT_NE(table.find(" emb+0-1 "), std::string::npos) << table;
  EXPECT_NE(table.find(" 2-3 "), std::string::npos) << table;
  EXPECT_NE(table.find(" 4+head "), std::string::npos) << table;
}

TEST(PlanStages, EmbeddingAndHeadCountOnTheirRanks) {
  // A big embedding on rank 0 and head on rank 2 push layers to the middle rank.
  const StagePlan plan = plan_stages(uniform_model(9, 100, 300, 300), budgets({1000, 1000, 1000}));
  expect_valid(plan, 9);
  EXPECT_EQ(plan.stages[0].n_layers(), 2);
  EXPECT_EQ(plan.stages[1].n_layers(), 5);
  EXPECT_EQ(plan.stages[2].n_layers(), 2);
  EXPECT_EQ(plan.stages[0].bytes_weights, 500);
}

TEST(PlanStages, MinimisesTheLargestLoadRatio) {
  // Brute force over all splits of 7 uneven layers into 3 ranks with uneven budgets.
  ModelFootprint model;
  model.layer_bytes = {50, 10, 80, 20, 30, 70, 40};
  const auto ranks = budgets({100, 300, 200});
  const StagePlan plan = plan_stages(model, ranks);
  expect_valid(plan, 7);
  auto load = [&](int64_t a, int64_t b, int r) {
    double bytes = 0;
    for (int64_t l = a; l < b; ++l) bytes += model.layer_bytes[static_cast<size_t>(l)];
    return bytes / ranks[static_cast<size_t>(r)].budget_bytes;
  };
  double best = 1e9;
  for (int64_t i = 1; i < 7; ++i) {
    for (int64_t j = i + 1; j < 7; ++j) best = std::min(best, std::max({load(0, i, 0), load(i, j, 1), load(j, 7, 2)}));
  }
  double achieved = 0;
  for (const Stage& s : plan.stages) achieved = std::max(achieved, load(s.first_layer, s.end_layer, s.rank));
  EXPECT_NEAR(achieved, best, 1e-9);
}

TEST(PlanStages, MoreRanksThanLayers_ConfigErrorStatesBoth) {
  try {
    plan_stages(uniform_model(2, 10), budgets({10, 10, 10}));
    FAIL();
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("world size 3"), std::string::npos) << message;
    EXPECT_NE(message.find("2 decoder layers"), std::string::npos) << message;
  }
}

TEST(PlanStages, OwnerOfLayer) {
  const StagePlan plan = plan_stages(uniform_model(6, 1), budgets({1, 1, 1}));
  EXPECT_EQ(plan.owner_of_layer(0), 0);
  EXPECT_EQ(plan.owner_of_layer(5), 2);
  EXPECT_THROW(plan.owner_of_layer(6), Error);
}

TEST(BudgetFromSpec, PerRankOverridesAllRanks) {
  EXPECT_EQ(budget_from_spec("cpu=8GiB", 3, c10::DeviceType::CPU), int64_t{8} << 30);
  EXPECT_EQ(budget_from_spec("cpu=8GiB,1:cpu=2GiB", 1, c10::DeviceType::CPU), int64_t{2} << 30);
  EXPECT_EQ(budget_from_spec("cpu=8GiB,1:cpu=2GiB", 0, c10::DeviceType::CPU), int64_t{8} << 30);
  EXPECT_EQ(budget_from_spec("cuda=70GiB,cpu=100GB", 0, c10::DeviceType::CUDA), int64_t{70} << 30);
  EXPECT_EQ(budget_from_spec("cuda=70GiB,cpu=100GB", 0, c10::DeviceType::CPU), int64_t{100000000000});
  EXPECT_FALSE(budget_from_spec("cuda=70GiB", 0, c10::DeviceType::CPU).has_value());
  EXPECT_THROW(budget_from_spec("tpu=1GiB", 0, c10::DeviceType::CPU), ConfigError);
  EXPECT_THROW(budget_from_spec("cpu=lots", 0, c10::DeviceType::CPU), ConfigError);
  EXPECT_THROW(budget_from_spec("x:cpu=1GiB", 0, c10::DeviceType::CPU), ConfigError);
}

TEST(AfterReserve, FifteenPercentAtLeastTwoGiB) {
  const int64_t gib = int64_t{1} << 30;
  EXPECT_EQ(after_reserve(100 * gib), 85 * gib);
  EXPECT_EQ(after_reserve(10 * gib), 8 * gib);
  EXPECT_EQ(after_reserve(gib), 0);
}

}  // namespace
}  // namespace pipeprune

namespace pipeprune {
namespace {

TEST(PlanStages, RankWithLittleMemory_GetsFewerLayersButAtLeastOne) {
  const StagePlan plan = plan_stages(uniform_model(10, 100), budgets({5000, 50, 5000}));
  expect_valid(plan, 10);
  EXPECT_EQ(plan.stages[1].n_layers(), 1);
  EXPECT_EQ(plan.stages[0].n_layers() + plan.stages[2].n_layers(), 9);
}

}  // namespace
}  // namespace pipeprune
