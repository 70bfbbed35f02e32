// The runtime plan of a GPU rank (dist/memory_plan.h): a stage context whose device is CUDA is
// planned on both sides, device and host, and the activation stores follow the placement.
// Planning allocates nothing, so these run without a GPU: the context is opened on the CPU and
// its device then set to cuda:0, as open_stage sets it for `--device cuda`.
#include "dist/memory_plan.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <string>

#include "core/common/error.h"
#include "core/memory/gpu_memory_estimate.h"
#include "support/run_command.h"
#include "unit/transport/transport_test_util.h"

namespace pipeprune {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;

// Many long samples on the tiny demo model, so the activations (4096 x 512 x hidden x fp32 per
// store) dominate what a layer needs.
EstimateSettings many_samples() {
  EstimateSettings settings;
  settings.method = PruneMethod::kSparseGPT;
  settings.nsamples = 4096;
  settings.seqlen = 512;
  return settings;
}

StageContext gpu_context(Transport& transport, int64_t device_budget, int64_t host_budget) {
  StageContext context =
      open_stage(transport, StageOptions{testing::kDemoModel, c10::Device(c10::kCPU), at::kFloat, device_budget});
  // What open_stage sets for a CUDA rank: the stage budget is the device's, the host has its own.
  context.device = c10::Device(c10::kCUDA, 0);
  context.host_budget_bytes = host_budget;
  return context;
}

GpuRankEstimate expected(const StageContext& context, ActivationPlacement placement) {
  EstimateSettings settings = many_samples();
  settings.baseline_bytes = context.baseline_bytes;
  return estimate_prune_rank_gpu(context.spec, context.share(), settings, placement);
}

TEST(GpuMemoryPlan, RoomyDevice_ActivationsStayOnItAndTheHostHoldsTheStoredLayer) {
  testing::run_ranks(1, [](Transport& transport) {
    const StageContext context = gpu_context(transport, 64 * kGiB, 64 * kGiB);
    const MemoryPlan plan = plan_prune_memory(context, many_samples());
    const GpuRankEstimate on_device = expected(context, ActivationPlacement::kDevice);
    EXPECT_TRUE(plan.gpu);
    EXPECT_FALSE(plan.activations_on_host);
    EXPECT_FALSE(plan.spills());
    EXPECT_EQ(plan.estimate.total(), on_device.device.total());
    EXPECT_EQ(plan.host_estimate.total(), on_device.host.total());
    EXPECT_EQ(plan.host_estimate.activations, 0);
    EXPECT_NE(plan.describe().find("activations on the device"), std::string::npos) << plan.describe();
  });
}

TEST(GpuMemoryPlan, DeviceShortOfTheActivations_OffloadsThemToPinnedHostStores) {
  testing::run_ranks(1, [](Transport& transport) {
    StageContext probe = gpu_context(transport, 64 * kGiB, 64 * kGiB);
    const int64_t with_activations = expected(probe, ActivationPlacement::kDevice).device.total();
    const StageContext context = gpu_context(transport, with_activations - 1, 64 * kGiB);
    const MemoryPlan plan = plan_prune_memory(context, many_samples());
    EXPECT_TRUE(plan.activations_on_host);
    EXPECT_FALSE(plan.spills());
    EXPECT_EQ(plan.estimate.activations, 0);
    EXPECT_EQ(plan.host_estimate.activations, expected(context, ActivationPlacement::kHost).host.activations);
    EXPECT_LE(plan.estimate.total(), context.stage.budget_bytes);
    const auto store = make_planned_store(plan, 2, ::testing::TempDir(), 0, "inputs");
    store->put(0, at::ones({1, 4}));
    EXPECT_TRUE(store->get(0).device().is_cpu());
    EXPECT_EQ(store->bytes_spilled(), 0);
  });
}

TEST(GpuMemoryPlan, HostShortToo_OffloadedActivationsSpillBeyondTheHostBudget) {
  testing::run_ranks(1, [](Transport& transport) {
    StageContext probe = gpu_context(transport, 64 * kGiB, 64 * kGiB);
    const int64_t with_activations = expected(probe, ActivationPlacement::kDevice).device.total();
    const GpuRankEstimate offloaded = expected(probe, ActivationPlacement::kHost);
    const int64_t host_budget = offloaded.host.total() - offloaded.host.activations + 64 * kMiB;
    const StageContext context = gpu_context(transport, with_activations - 1, host_budget);
    const MemoryPlan plan = plan_prune_memory(context, many_samples());
    EXPECT_TRUE(plan.activations_on_host);
    EXPECT_TRUE(plan.spills());
    EXPECT_GT(plan.host_estimate.activations_spilled, 0);
    EXPECT_LE(plan.host_estimate.total(), host_budget);
  });
}

TEST(GpuMemoryPlan, BudgetsTooSmall_OneLineErrorNamingTheSideAndFlag) {
  testing::run_ranks(1, [](Transport& transport) {
    const StageContext tiny_device = gpu_context(transport, 64 * kMiB, 64 * kGiB);
    try {
      plan_prune_memory(tiny_device, many_samples());
      ADD_FAILURE() << "a 64 MiB device budget was accepted";
    } catch (const OutOfMemoryError& error) {
      const std::string message = error.what();
      EXPECT_NE(message.find("--max-memory cuda=SIZE"), std::string::npos) << message;
      EXPECT_NE(message.find("device budget of 64.00 MiB"), std::string::npos) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
    StageContext probe = gpu_context(transport, 64 * kGiB, 64 * kGiB);
    const int64_t with_activations = expected(probe, ActivationPlacement::kDevice).device.total();
    const StageContext tiny_host = gpu_context(transport, with_activations - 1, 1 * kMiB);
    try {
      plan_prune_memory(tiny_host, many_samples());
      ADD_FAILURE() << "a 1 MiB host budget was accepted";
    } catch (const OutOfMemoryError& error) {
      const std::string message = error.what();
      EXPECT_NE(message.find("--max-memory cpu=SIZE"), std::string::npos) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
  });
}

}  // namespace
}  // namespace pipeprune
