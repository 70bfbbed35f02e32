// The memory one rank of a merge needs, planned before any tensor is read (dist/merge_job.h runs
// it, `pipeprune estimate --method ties ...` prints it). A rank holds one tensor of every input
// at a time, so the largest tensor it merges sets its peak.
#pragma once

#include <cstdint>

namespace pipeprune {

struct MergeRankMemory {
  int64_t process = 0;        // the binary before any model data
  int64_t fp32_copies = 0;    // (inputs + 3) fp32 copies: the inputs, accumulator, result, a temporary
  int64_t mapped_inputs = 0;  // the inputs' stored bytes of that tensor, resident as their pages are read
  int64_t output = 0;         // the result in the output dtype
  int64_t total() const { return process + fp32_copies + mapped_inputs + output; }
};

// `inputs`: the base (for task-vector methods) and every model. Measured on a llama-1b-shaped
// bf16 TIES of two models (3 inputs): peak RSS 1.75 GiB where this says 2.11 GiB (docs/merge.md).
MergeRankMemory estimate_merge_rank(int64_t process_bytes, int64_t largest_numel, int64_t stored_bytes,
                                    int64_t written_bytes, int64_t inputs);

}  // namespace pipeprune
