// What a GPU rank of a prune job holds on its device and in host RAM, each against its own
// budget (`--max-memory cuda=...` and `cpu=...`), computed from the model's shapes alone, so a
// GPU job can be planned from a machine without a GPU.
//
// On a GPU rank (see dist/prune_steps.cpp and dist/stage_runner.cpp):
//  device  the CUDA runtime (context, cuBLAS workspaces, LibTorch's kernels), the compute copy
//          of the layer being pruned, the statistics (Wanda's norms, SparseGPT's Hessians),
//          the forward's and the mask's scratch, the calibration activations when they fit
//          there, and the caching allocator's slack over all of these
//  host    the process, the layer as loaded from the checkpoint (pruned in place and written
//          from there), the embedding and head of the first/last rank, the activations when
//          they are offloaded (pinned, whole samples; beyond the host budget they spill to
//          disk), and the staging buffers of the MPI transport for device tensors
// Activations live either all on the device or all on the host (a sample at a time is moved to
// the device for each pass, so two samples are in flight there).
#pragma once

#include <cstdint>
#include <string>

#include "core/memory/memory_estimate.h"

namespace pipeprune {

// What the device holds beyond our tensors. Not measured on a GPU yet (no GPU has run this
// code): the CUDA context of a process that has loaded LibTorch's CUDA kernels is 0.5-1 GiB on
// recent drivers with lazy module loading, cuBLAS/cuBLASLt add their workspaces, and the
// caching allocator rounds and fragments (blocks of 2 MiB multiples, 20 MiB segments for mid
// sizes). benchmarks/gpu_check.sh prints the measured figures next to these.
struct GpuOverheads {
  int64_t cuda_runtime_bytes = int64_t{1} << 30;
  int64_t allocator_slack_percent = 10;  // of the device tensors' bytes
};

enum class ActivationPlacement { kDevice, kHost };
const char* placement_name(ActivationPlacement placement);

struct GpuRankEstimate {
  // baseline: CUDA runtime and allocator slack; activations: when placed on the device; scratch
  // includes the two samples in flight when activations are offloaded.
  MemoryEstimate device;
  // baseline: the process; weights: stored-dtype copies; activations: the RAM part when
  // offloaded (activations_spilled beyond it); scratch: transport staging.
  MemoryEstimate host;
  ActivationPlacement placement = ActivationPlacement::kDevice;
};

// The peak on each side over the job's phases, with the activations placed as asked.
// `host_activation_ram` (placement kHost only): host RAM the offloaded activations may use,
// the rest spills to disk; < 0 unlimited. settings.baseline_bytes is the host process.
GpuRankEstimate estimate_prune_rank_gpu(const ModelSpec& spec, const StageShare& share, const EstimateSettings& settings,
                                        ActivationPlacement placement, int64_t host_activation_ram = -1,
                                        const GpuOverheads& overheads = {});

// Where a GPU rank's activations go and whether it fits.
struct GpuPrunePlan {
  GpuRankEstimate estimate;
  bool fits = false;
  // When it does not fit: which side and the least budget it needs there.
  bool device_short = false;
  int64_t least_bytes = 0;
  // Host RAM each activation store may keep when offloaded activations spill (< 0: no spill).
  int64_t host_ram_per_store = -1;
  bool spills() const { return host_ram_per_store >= 0; }
};

// Activations on the device when both sides fit so; else offloaded to host RAM, spilling to
// disk beyond the host budget (one sample per store must stay in RAM). Does not throw.
GpuPrunePlan plan_gpu_prune_rank(const ModelSpec& spec, const StageShare& share, const EstimateSettings& settings,
                                 int64_t device_budget, int64_t host_budget, const GpuOverheads& overheads = {});

}  // namespace pipeprune
