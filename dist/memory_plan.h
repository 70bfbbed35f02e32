// How one rank of a prune job fits its budget, decided before any work: the estimated peak,
// and how much of the activations may stay in RAM (the rest spills to HDF5).
//
// plan_prune_memory() is collective: every rank checks its own budget and the ranks exchange
// the verdicts, so a budget too small on any rank is the same one-line error on every rank
// (stating the minimum) instead of one rank failing while the others wait.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "core/memory/activation_store.h"
#include "core/memory/memory_estimate.h"
#include "dist/stage_context.h"

namespace pipeprune {

struct MemoryPlan {
  MemoryEstimate estimate;         // with the spill below applied; a GPU rank's: its device
  int64_t budget_bytes = 0;
  int64_t activation_ram_per_store = -1;  // < 0: every activation in RAM
  bool resident = false;                  // eval: every owned layer held at once
  // A GPU rank of a prune job (core/memory/gpu_memory_estimate.h): its host RAM, and whether
  // the activations are offloaded there (spilling beyond activation_ram_per_store per store).
  bool gpu = false;
  MemoryEstimate host_estimate;
  int64_t host_budget_bytes = 0;
  bool activations_on_host = false;
  bool spills() const { return activation_ram_per_store >= 0; }
  std::string describe() const;  // one line for the log
};

MemoryPlan plan_prune_memory(const StageContext& context, EstimateSettings settings);

// Evaluation of n_windows windows by this rank: resident layers when they fit the budget, else
// streamed layers with the hidden states in RAM up to the budget (each rank decides for itself;
// the two paths exchange windows alike). OutOfMemoryError when even one streamed layer does not
// fit. Not collective: `plan` reports every rank's verdict this way.
MemoryPlan plan_eval_memory_of_rank(const StageContext& context, int64_t n_windows, int64_t seqlen);
// The same, collective: if any rank's budget is too small, every rank throws that rank's error,
// so no rank is left waiting for a peer that gave up.
MemoryPlan plan_eval_memory(const StageContext& context, int64_t n_windows, int64_t seqlen);

// Creates one activation store of the plan: where the samples are put (host RAM or the device),
// in host RAM (a GPU rank's offloaded activations), or spilling to `spill_dir` beyond the plan's
// host RAM share (the spill file is registered for removal if the job aborts).
std::unique_ptr<ActivationStore> make_planned_store(const MemoryPlan& plan, int64_t n_samples,
                                                    const std::filesystem::path& spill_dir, int rank,
                                                    const std::string& name);

}  // namespace pipeprune
