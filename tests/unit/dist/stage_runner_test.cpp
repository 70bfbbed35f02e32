// The stage runner on the real stories260K checkpoint (5 layers) with recording steps whose
// "layer" adds 1 to every activation, so each value tells which layers it went through: where a
// stage's inputs come from, the order of the walk, the retry-on-CPU policy (a retried layer
// starts over; a half-finished attempt never reaches the next layer or the next rank), the
// policy that refuses to retry, and fault injection. World 1, and world 2 as threads.
#include "dist/stage_runner.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/common/error.h"
#include "core/common/log.h"
#include "support/run_command.h"
#include "unit/transport/transport_test_util.h"

namespace pipeprune {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kLayers = 5;  // stories260K

StageContext open_demo(Transport& transport) {
  return open_stage(transport, StageOptions{testing::kDemoModel, c10::Device(c10::kCPU), at::kFloat, int64_t{8} << 30});
}

at::Tensor demo_windows() { return at::arange(3, 3 + 3 * 8, at::kLong).reshape({3, 8}); }

// What the first rank's embedding gives a window, in the compute dtype.
at::Tensor embedded(const StageContext& context, const at::Tensor& tokens) {
  c10::InferenceMode guard;
  return embed_tokens(load_embedding(context.checkpoint, context.config), tokens).to(at::kFloat);
}

StoreFactory memory_stores() {
  return [](int64_t n, const std::string&) { return make_memory_activation_store(n); };
}

// How a step's first attempt at one layer goes wrong: it puts `wrong` values (+100) for the
// samples before `at_sample` and then throws `error`.
struct Sabotage {
  int64_t layer = -1;
  int64_t at_sample = 0;
  std::function<void()> error = [] { PIPEPRUNE_FAIL(OutOfMemoryError, "test: device allocation failed"); };
};

// A layer that adds 1 to every activation.
class AddOneStep final : public LayerStep {
 public:
  Sabotage sabotage;
  std::vector<std::string> calls;  // "run L on DEVICE" / "commit L"
  std::vector<bool> had_outputs;

  void run(LayerRun& run, const ActivationStore* inputs, ActivationStore* outputs) override {
    const int attempt = ++attempts_[run.layer()];
    calls.push_back("run " + std::to_string(run.layer()) + " on " + run.device().str());
    had_outputs.push_back(outputs != nullptr);
    run.begin(LayerPass::kStats);
    const bool fails = run.layer() == sabotage.layer && attempt == 1;
    if (inputs == nullptr || outputs == nullptr) {
      if (fails) sabotage.error();
      return;
    }
    run.begin(LayerPass::kOutput);
    for (int64_t s = 0; s < inputs->size(); ++s) {
      if (fails && s == sabotage.at_sample) sabotage.error();
      outputs->put(s, inputs->get(s).to(run.device()) + (fails ? 100 : 1));
    }
  }
  void commit(int64_t layer) override { calls.push_back("commit " + std::to_string(layer)); }
  int64_t count(const std::string& call) const { return std::count(calls.begin(), calls.end(), call); }

 private:
  std::map<int64_t, int> attempts_;
};

LayerWalk walk_over(const at::Tensor& windows, bool keep_final) {
  LayerWalk walk;
  walk.windows = windows;
  walk.make_store = memory_stores();
  walk.keep_final_outputs = keep_final;
  return walk;
}

// The embedding after `layers` steps of +1, added one at a time as the layers do (fp32 sums
// round differently from a single + layers).
at::Tensor after_layers(const StageContext& context, const at::Tensor& tokens, int64_t layers) {
  at::Tensor x = embedded(context, tokens);
  for (int64_t l = 0; l < layers; ++l) x = x + 1;
  return x;
}

void expect_holds(const ActivationStore& store, const StageContext& context, const at::Tensor& windows, int64_t layers) {
  ASSERT_EQ(store.size(), windows.size(0));
  for (int64_t s = 0; s < store.size(); ++s) {
    EXPECT_TRUE(at::equal(store.get(s), after_layers(context, windows.slice(0, s, s + 1), layers))) << "sample " << s;
  }
}

TEST(StageRunnerLayers, OneRank_EmbedsThenEachLayerFeedsTheNextAndTheLastKeepsItsOutputs) {
  testing::run_ranks(1, [](Transport& transport) {
    const StageContext context = open_demo(transport);
    StageRunner runner(context, 8);
    AddOneStep step;
    const at::Tensor windows = demo_windows();
    const auto final_outputs = runner.run_layers(walk_over(windows, /*keep_final=*/true), step);
    ASSERT_NE(final_outputs, nullptr);
    expect_holds(*final_outputs, context, windows, kLayers);
    std::vector<std::string> expected;
    for (int64_t l = 0; l < kLayers; ++l) {
      expected.push_back("run " + std::to_string(l) + " on cpu");
      expected.push_back("commit " + std::to_string(l));
    }
    EXPECT_EQ(step.calls, expected);
  });
}

TEST(StageRunnerLayers, PruneWalk_TheModelsLastLayerGetsNoOutputsAndNothingIsReturned) {
  testing::run_ranks(1, [](Transport& transport) {
    const StageContext context = open_demo(transport);
    StageRunner runner(context, 8);
    AddOneStep step;
    EXPECT_EQ(runner.run_layers(walk_over(demo_windows(), /*keep_final=*/false), step), nullptr);
    EXPECT_EQ(step.had_outputs, (std::vector<bool>{true, true, true, true, false}));
  });
}

TEST(StageRunnerLayers, WithoutActivations_EveryLayerRunsWithNoStores) {
  testing::run_ranks(1, [](Transport& transport) {
    const StageContext context = open_demo(transport);
    StageRunner runner(context, 1);
    AddOneStep step;
    EXPECT_EQ(runner.run_layers(LayerWalk{}, step), nullptr);
    EXPECT_EQ(step.had_outputs, std::vector<bool>(kLayers, false));
    EXPECT_EQ(step.calls.size(), 2u * kLayers);
  });
}

// Captures warning lines for the test's duration.
class CapturedWarnings {
 public:
  CapturedWarnings() {
    previous_ = log::set_sink([this](log::Level level, const std::string& line) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (level >= log::Level::kWarn) lines_ += line + "\n";
    });
  }
  ~CapturedWarnings() { log::set_sink(previous_); }
  std::string text() {
    std::lock_guard<std::mutex> lock(mutex_);
    return lines_;
  }

 private:
  log::Sink previous_;
  std::mutex mutex_;
  std::string lines_;
};

// Half of layer 2's output pass is done (with wrong values) when its first attempt runs out of
// memory: the retry starts over on the CPU and nothing of the first attempt survives.
TEST(StageRunnerRetry, OutOfMemoryHalfwayThroughALayer_TheLayerStartsOverOnTheCpuAndLogsIt) {
  CapturedWarnings warnings;
  testing::run_ranks(1, [](Transport& transport) {
    const StageContext context = open_demo(transport);
    StageRunner runner(context, 8);
    AddOneStep step;
    step.sabotage.layer = 2;
    step.sabotage.at_sample = 2;
    const at::Tensor windows = demo_windows();
    const auto final_outputs = runner.run_layers(walk_over(windows, true), step);
    expect_holds(*final_outputs, context, windows, kLayers);
    EXPECT_EQ(step.count("run 2 on cpu"), 2);
    EXPECT_EQ(step.count("commit 2"), 1);
  });
  EXPECT_THAT(warnings.text(), HasSubstr("layer 3/5: the output pass ran out of memory on cpu; retrying the layer on cpu"));
}

// The same failure in the first rank's last layer at world 2: the second rank must receive the
// retried layer's outputs only, never the first attempt's.
TEST(StageRunnerRetry, TwoRanks_OutputsLeaveOnlyAfterTheLayerSucceeded) {
  testing::run_ranks(2, [](Transport& transport) {
    const StageContext context = open_demo(transport);
    StageRunner runner(context, 8);
    AddOneStep step;
    step.sabotage.layer = context.plan.stages[0].end_layer - 1;
    step.sabotage.at_sample = 2;
    const at::Tensor windows = demo_windows();
    const auto final_outputs = runner.run_layers(walk_over(windows, true), step);
    if (transport.rank() == 0) {
      EXPECT_EQ(final_outputs, nullptr);
      EXPECT_EQ(step.count("run " + std::to_string(step.sabotage.layer) + " on cpu"), 2);
      return;
    }
    ASSERT_NE(final_outputs, nullptr);
    expect_holds(*final_outputs, context, windows, kLayers);
  });
}

TEST(StageRunnerRetry, PolicyFail_OutOfMemoryErrorNamingTheLayerAndPassWithoutARetry) {
  testing::run_ranks(1, [](Transport& transport) {
    const StageContext context = open_demo(transport);
    StageRunner runner(context, 8);
    AddOneStep step;
    step.sabotage.layer = 1;
    LayerWalk walk = walk_over(demo_windows(), true);
    walk.retry = RetryPolicy::kFail;
    const std::string message = testing::error_message<OutOfMemoryError>([&] { runner.run_layers(walk, step); });
    EXPECT_THAT(message, HasSubstr("layer 2/5: the output pass ran out of memory on cpu, and this pass cannot start over"));
    EXPECT_EQ(step.count("run 1 on cpu"), 1);
  });
}

TEST(StageRunnerRetry, OtherErrors_PropagateWithoutARetry) {
  testing::run_ranks(1, [](Transport& transport) {
    const StageContext context = open_demo(transport);
    StageRunner runner(context, 8);
    AddOneStep step;
    step.sabotage.layer = 3;
    step.sabotage.error = [] { PIPEPRUNE_FAIL(FormatError, "test: a corrupt tensor"); };
    EXPECT_THAT(testing::error_message<FormatError>([&] { runner.run_layers(walk_over(demo_windows(), true), step); }),
                HasSubstr("a corrupt tensor"));
    EXPECT_EQ(step.count("run 3 on cpu"), 1);
    EXPECT_EQ(step.count("commit 3"), 0);
  });
}

TEST(StageRunnerFaults, InjectedOutOfMemoryFiresOnceAndAFailingLayerStopsTheWalk) {
  CapturedWarnings warnings;
  testing::run_ranks(1, [](Transport& transport) {
    const StageContext context = open_demo(transport);
    FaultPlan plan;
    plan.out_of_memory = {{1, LayerPass::kStats}};
    plan.fail_layer = 4;
    const auto faults = make_fault_injector(plan);
    StageRunner runner(context, 8, *faults);
    AddOneStep step;
    EXPECT_THAT(testing::error_message<Error>([&] { runner.run_layers(walk_over(demo_windows(), true), step); }),
                HasSubstr("failing in layer 4"));
    EXPECT_EQ(step.count("run 1 on cpu"), 2);
    EXPECT_EQ(step.count("commit 3"), 1);
    EXPECT_EQ(step.count("run 4 on cpu"), 0);
  });
  EXPECT_THAT(warnings.text(), HasSubstr("layer 2/5: the stats pass ran out of memory on cpu; retrying the layer on cpu"));
}

TEST(StageRunnerSamples, TwoRanks_TheLastRankReturnsTheBatchAfterEveryLayerOfEveryStage) {
  testing::run_ranks(2, [](Transport& transport) {
    const StageContext context = open_demo(transport);
    StageRunner runner(context, 8);
    const at::Tensor tokens = demo_windows().slice(0, 0, 2);  // a batch of two
    std::vector<size_t> indices;
    const at::Tensor out = runner.run_sample(tokens, kTagEvaluation, LayerPass::kEval, RetryPolicy::kRetryOnCpu,
                                             [&](LayerRun&, size_t index, const at::Tensor& hidden) {
                                               indices.push_back(index);
                                               return hidden + 1;
                                             });
    EXPECT_EQ(indices.size(), static_cast<size_t>(context.stage.n_layers()));
    if (transport.rank() == 0) {
      EXPECT_FALSE(out.defined());
      return;
    }
    EXPECT_TRUE(at::equal(out, after_layers(context, tokens, kLayers)));
  });
}

TEST(StageRunnerSamples, OutOfMemoryInOneLayer_ThatLayerRunsAgainOnTheCpuForThisBatch) {
  testing::run_ranks(1, [](Transport& transport) {
    const StageContext context = open_demo(transport);
    StageRunner runner(context, 8);
    int attempts_of_layer_2 = 0;
    const at::Tensor tokens = demo_windows().slice(0, 0, 1);
    const at::Tensor out = runner.run_sample(tokens, kTagEvaluation, LayerPass::kEval, RetryPolicy::kRetryOnCpu,
                                             [&](LayerRun& run, size_t index, const at::Tensor& hidden) {
                                               if (run.layer() == 2 && attempts_of_layer_2++ == 0) {
                                                 PIPEPRUNE_FAIL(OutOfMemoryError, "test: device full");
                                               }
                                               EXPECT_EQ(run.layer(), static_cast<int64_t>(index));
                                               return hidden + 1;
                                             });
    EXPECT_EQ(attempts_of_layer_2, 2);
    EXPECT_TRUE(at::equal(out, after_layers(context, tokens, kLayers)));
  });
}

}  // namespace
}  // namespace pipeprune
