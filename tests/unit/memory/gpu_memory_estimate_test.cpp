// A GPU rank's memory split between the device and the host, checked by hand from the model's
// shapes (bf16 checkpoint, fp32 compute: the device's compute copy is twice the host's stored
// layer; the activations are 2 stores x samples x seqlen x hidden x 4 bytes), the placement
// decision at budgets on either side of each threshold, and the case: Llama-2-70B on 8
// GPUs of 80 GiB fits for Wanda and SparseGPT with everything on the device, planned here
// without a GPU.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "core/memory/activation_store.h"
#include "core/memory/gpu_memory_estimate.h"
#include "core/model/model_spec.h"
#include "core/model/synthetic_model.h"

namespace pipeprune {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;
constexpr int64_t kUnlimited = int64_t{1} << 60;

ModelSpec shape(const std::string& name) { return ModelSpec::from_config(synthetic_shape_config(name), DType::kBF16); }

EstimateSettings settings_for(PruneMethod method, int64_t nsamples = 128, int64_t seqlen = 2048) {
  EstimateSettings settings;
  settings.method = method;
  settings.nsamples = nsamples;
  settings.seqlen = seqlen;
  settings.baseline_bytes = 150 << 20;
  return settings;
}

int64_t layer_parameters(const ModelSpec& spec) {
  int64_t n = 0;
  for (const SpecTensor& t : spec.layers[0]) {
    int64_t numel = 1;
    for (int64_t d : t.shape) numel *= d;
    n += numel;
  }
  return n;
}

TEST(GpuMemoryEstimate, DeviceHoldsTheComputeCopyAndActivations_HostTheStoredLayer) {
  const ModelSpec spec = shape("llama-7b");
  const StageShare middle{4, 8, false, false};  // no embedding or head: every phase is a layer
  const EstimateSettings settings = settings_for(PruneMethod::kWanda);
  const GpuRankEstimate on_device = estimate_prune_rank_gpu(spec, middle, settings, ActivationPlacement::kDevice);
  const int64_t params = layer_parameters(spec);
  EXPECT_EQ(on_device.host.weights, params * 2);    // bf16 as stored
  EXPECT_EQ(on_device.device.weights, params * 4);  // fp32 compute copy
  const int64_t sample = 2048 * 4096 * 4;
  EXPECT_EQ(on_device.device.activations, 2 * 128 * sample);
  EXPECT_EQ(on_device.host.activations, 0);
  // Wanda: one float per input column for q/k/v, o, gate/up and down: 3 x 4096 + 11008.
  EXPECT_EQ(on_device.device.statistics, (3 * 4096 + 11008) * 4);
  const MemoryEstimate& d = on_device.device;
  EXPECT_EQ(d.baseline, GpuOverheads{}.cuda_runtime_bytes + (d.weights + d.activations + d.statistics + d.scratch) / 10);
  // The host: the process, the stored layer, and staging of two samples for the neighbours.
  EXPECT_EQ(on_device.host.baseline, settings.baseline_bytes);
  EXPECT_EQ(on_device.host.scratch, 2 * sample);
  EXPECT_EQ(on_device.host.statistics, 0);

  const GpuRankEstimate offloaded = estimate_prune_rank_gpu(spec, middle, settings, ActivationPlacement::kHost);
  EXPECT_EQ(offloaded.device.activations, 0);
  EXPECT_EQ(offloaded.host.activations, 2 * 128 * sample);
  EXPECT_EQ(offloaded.device.scratch, on_device.device.scratch + 2 * sample);  // two samples in flight
  EXPECT_EQ(offloaded.device.weights, on_device.device.weights);
}

TEST(GpuMemoryEstimate, OneRankAlone_StagesNothing) {
  const ModelSpec spec = shape("llama-1b");
  const GpuRankEstimate alone = estimate_prune_rank_gpu(spec, StageShare{0, spec.n_layers(), true, true},
                                                        settings_for(PruneMethod::kSparseGPT), ActivationPlacement::kDevice);
  EXPECT_EQ(alone.host.scratch, 0);
}

TEST(GpuMemoryEstimate, PlacementFollowsTheBudgets) {
  const ModelSpec spec = shape("llama-7b");
  const StageShare all{0, spec.n_layers(), true, true};
  const EstimateSettings settings = settings_for(PruneMethod::kSparseGPT);
  const GpuRankEstimate on_device = estimate_prune_rank_gpu(spec, all, settings, ActivationPlacement::kDevice);
  const GpuRankEstimate offloaded = estimate_prune_rank_gpu(spec, all, settings, ActivationPlacement::kHost);
  ASSERT_LT(offloaded.device.total(), on_device.device.total());

  // Room for everything on the device.
  GpuPrunePlan plan = plan_gpu_prune_rank(spec, all, settings, on_device.device.total(), on_device.host.total());
  EXPECT_TRUE(plan.fits);
  EXPECT_EQ(plan.estimate.placement, ActivationPlacement::kDevice);
  EXPECT_FALSE(plan.spills());

  // One byte short on the device: the activations go to host RAM, all of them held there.
  plan = plan_gpu_prune_rank(spec, all, settings, on_device.device.total() - 1, kUnlimited);
  EXPECT_TRUE(plan.fits);
  EXPECT_EQ(plan.estimate.placement, ActivationPlacement::kHost);
  EXPECT_FALSE(plan.spills());
  EXPECT_EQ(plan.estimate.host.activations, on_device.device.activations);

  // A host too small for them: they spill to disk beyond what it can hold, within its budget.
  const int64_t host_budget = offloaded.host.total() - 3 * kGiB;
  plan = plan_gpu_prune_rank(spec, all, settings, on_device.device.total() - 1, host_budget);
  EXPECT_TRUE(plan.fits);
  EXPECT_TRUE(plan.spills());
  EXPECT_LE(plan.estimate.host.total(), host_budget);
  EXPECT_GT(plan.estimate.host.activations_spilled, 0);
  EXPECT_EQ(plan.estimate.host.activations + plan.estimate.host.activations_spilled, on_device.device.activations);
  // What is left of the host budget after everything else, shared by the two stores.
  const GpuRankEstimate none_in_ram = estimate_prune_rank_gpu(spec, all, settings, ActivationPlacement::kHost, 0);
  EXPECT_EQ(plan.host_ram_per_store, (host_budget - none_in_ram.host.total()) / 2);
  EXPECT_GE(plan.host_ram_per_store * 2, plan.estimate.host.activations);

  // A host that cannot keep one sample per store: no fit, the host named.
  plan = plan_gpu_prune_rank(spec, all, settings, on_device.device.total() - 1, offloaded.host.baseline + 1);
  EXPECT_FALSE(plan.fits);
  EXPECT_FALSE(plan.device_short);
  EXPECT_GT(plan.least_bytes, offloaded.host.baseline + 1);

  // A device that cannot hold even one layer with the activations away: the device named.
  plan = plan_gpu_prune_rank(spec, all, settings, offloaded.device.total() - 1, kUnlimited);
  EXPECT_FALSE(plan.fits);
  EXPECT_TRUE(plan.device_short);
  EXPECT_EQ(plan.least_bytes, offloaded.device.total());
}

TEST(GpuMemoryEstimate, Llama70bOnEight80GiBGpus_FitsOnTheDevices) {
  const ModelSpec spec = shape("llama-70b");
  // Eight stages of ten layers, the embedding on the first and the head on the last (the split
  // plan_stages makes for 80 equal layers on eight equal GPUs).
  std::vector<StageShare> shares;
  for (int64_t rank = 0; rank < 8; ++rank) {
    shares.push_back(StageShare{rank * 10, rank * 10 + 10, rank == 0, rank == 7});
  }
  for (PruneMethod method : {PruneMethod::kWanda, PruneMethod::kSparseGPT}) {
    for (size_t rank = 0; rank < shares.size(); ++rank) {
      const StageShare& share = shares[rank];
      const GpuPrunePlan gpu = plan_gpu_prune_rank(spec, share, settings_for(method), 80 * kGiB, 16 * kGiB);
      EXPECT_TRUE(gpu.fits) << "rank " << rank;
      EXPECT_EQ(gpu.estimate.placement, ActivationPlacement::kDevice) << "rank " << rank;
      EXPECT_LT(gpu.estimate.device.total(), 40 * kGiB);
      EXPECT_LT(gpu.estimate.host.total(), 4 * kGiB);
    }
  }
}

TEST(HostActivationStore, KeepsCopiesInHostRam) {
  auto store = make_host_activation_store(2);
  at::Tensor sample = at::arange(6, at::kFloat).reshape({2, 3});
  store->put(0, sample);
  sample.fill_(-1);  // the store holds its own copy
  EXPECT_TRUE(store->get(0).equal(at::arange(6, at::kFloat).reshape({2, 3})));
  EXPECT_TRUE(store->get(0).device().is_cpu());
  store->put(0, sample);  // same shape: written into the slot
  EXPECT_TRUE(store->get(0).equal(sample));
  EXPECT_EQ(store->bytes_in_memory(), 6 * 4);
  EXPECT_EQ(store->bytes_spilled(), 0);
}

}  // namespace
}  // namespace pipeprune
