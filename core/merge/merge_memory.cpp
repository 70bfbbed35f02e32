#include "core/merge/merge_memory.h"

namespace pipeprune {

MergeRankMemory estimate_merge_rank(int64_t process_bytes, int64_t largest_numel, int64_t stored_bytes,
                                    int64_t written_bytes, int64_t inputs) {
  MergeRankMemory memory;
  memory.process = process_bytes;
  memory.fp32_copies = largest_numel * 4 * (inputs + 3);
  memory.mapped_inputs = stored_bytes * inputs;
  memory.output = written_bytes;
  return memory;
}

}  // namespace pipeprune
