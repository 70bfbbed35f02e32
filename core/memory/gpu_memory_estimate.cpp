#include "core/memory/gpu_memory_estimate.h"

#include <algorithm>

namespace pipeprune {

const char* placement_name(ActivationPlacement placement) {
  return placement == ActivationPlacement::kDevice ? "device" : "host";
}

namespace {

// One phase of the CPU-side estimate split between the device and the host.
void split_phase(const MemoryEstimate& phase, ActivationPlacement placement, int64_t in_flight, int64_t staging,
                 const GpuOverheads& overheads, MemoryEstimate& device, MemoryEstimate& host) {
  device.peak_phase = host.peak_phase = phase.peak_phase;
  device.weights = phase.weights - phase.weights_stored;
  device.statistics = phase.statistics;
  device.scratch = phase.scratch;
  if (placement == ActivationPlacement::kDevice) {
    device.activations = phase.activations;
  } else {
    // The sample being read and the one being written by each pass.
    if (phase.activations + phase.activations_spilled > 0) device.scratch += in_flight;
    host.activations = phase.activations;
    host.activations_spilled = phase.activations_spilled;
  }
  const int64_t tensors = device.weights + device.activations + device.statistics + device.scratch;
  device.baseline = overheads.cuda_runtime_bytes + tensors * overheads.allocator_slack_percent / 100;
  host.baseline = phase.baseline;
  host.weights = phase.weights_stored;
  host.scratch = staging;
}

}  // namespace

GpuRankEstimate estimate_prune_rank_gpu(const ModelSpec& spec, const StageShare& share, const EstimateSettings& settings,
                                        ActivationPlacement placement, int64_t host_activation_ram,
                                        const GpuOverheads& overheads) {
  EstimateSettings phased = settings;
  phased.activation_ram_bytes = placement == ActivationPlacement::kHost ? host_activation_ram : -1;
  const int64_t sample_bytes = settings.seqlen * spec.config.hidden_size * settings.compute_element_size;
  // Hidden states to and from the neighbouring ranks go through host buffers with the MPI
  // transport (NCCL sends device to device; counting them keeps the estimate above both).
  const bool exchanges = settings.sample_parallel ? settings.world_size > 1 : !(share.embedding && share.head);
  const int64_t staging = exchanges && settings.method != PruneMethod::kMagnitude ? 2 * sample_bytes : 0;

  GpuRankEstimate peak;
  peak.placement = placement;
  bool first = true;
  for (const MemoryEstimate& phase : prune_phases(spec, share, phased)) {
    MemoryEstimate device;
    MemoryEstimate host;
    split_phase(phase, placement, 2 * sample_bytes, staging, overheads, device, host);
    if (first || device.total() > peak.device.total()) peak.device = device;
    if (first || host.total() > peak.host.total()) peak.host = host;
    first = false;
  }
  return peak;
}

GpuPrunePlan plan_gpu_prune_rank(const ModelSpec& spec, const StageShare& share, const EstimateSettings& settings,
                                 int64_t device_budget, int64_t host_budget, const GpuOverheads& overheads) {
  GpuPrunePlan plan;
  plan.estimate = estimate_prune_rank_gpu(spec, share, settings, ActivationPlacement::kDevice, -1, overheads);
  if (plan.estimate.device.total() <= device_budget && plan.estimate.host.total() <= host_budget) {
    plan.fits = true;
    return plan;
  }
  // Offloaded: the device keeps one layer's compute copy, statistics, scratch and two samples.
  plan.estimate = estimate_prune_rank_gpu(spec, share, settings, ActivationPlacement::kHost, -1, overheads);
  if (plan.estimate.device.total() > device_budget) {
    plan.device_short = true;
    plan.least_bytes = plan.estimate.device.total();
    return plan;
  }
  if (plan.estimate.host.total() <= host_budget) {
    plan.fits = true;
    return plan;
  }
  // Beyond the host budget the activations spill to disk; each store keeps at least one sample.
  const int64_t sample_bytes = settings.seqlen * spec.config.hidden_size * settings.compute_element_size;
  const GpuRankEstimate least =
      estimate_prune_rank_gpu(spec, share, settings, ActivationPlacement::kHost, 2 * sample_bytes, overheads);
  if (least.host.total() > host_budget) {
    plan.estimate = least;
    plan.least_bytes = least.host.total();
    return plan;
  }
  const GpuRankEstimate without = estimate_prune_rank_gpu(spec, share, settings, ActivationPlacement::kHost, 0, overheads);
  const int64_t ram = host_budget - without.host.total();
  plan.estimate = estimate_prune_rank_gpu(spec, share, settings, ActivationPlacement::kHost, ram, overheads);
  plan.host_ram_per_store = ram / std::max<int64_t>(1, prune_activation_stores(share, settings, spec.n_layers()));
  plan.fits = true;
  return plan;
}

}  // namespace pipeprune
