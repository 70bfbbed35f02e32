// Evaluation under --parallel samples: the windows are dealt round-robin to the ranks
// (dist/sample_split.h, blocks of one window), every rank runs every layer (broadcast from its
// owner, one at a time) and the head over its own windows, and the per-window NLL sums are
// gathered and added in window order on every rank, so the perplexity is the same number as
// the pipeline's at every world size. Collective.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>

#include "dist/memory_plan.h"
#include "dist/stage_runner.h"

namespace pipeprune {

struct WindowSums {
  double total_nll = 0;
  int64_t predictions = 0;
};

// windows: [n_windows, seqlen] token ids on every rank; the runner's rotary tables cover seqlen.
// read_everywhere: every rank reads each layer and the head from the checkpoint instead of
// receiving them from their owners (dist/layer_broadcast.h).
WindowSums evaluate_on_samples(StageRunner& runner, const at::Tensor& windows, const MemoryPlan& memory,
                               const std::filesystem::path& spill_dir, bool read_everywhere);

}  // namespace pipeprune
