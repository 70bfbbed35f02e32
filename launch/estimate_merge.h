// `pipeprune estimate --method ties|dare_ties|... --merge-models N`: the memory each rank of a
// merge needs (core/merge/merge_memory.h), from a checkpoint's headers, a config or a named size.
#pragma once

#include <cstdint>
#include <string>

#include "core/model/model_spec.h"

namespace pipeprune {

struct MergeEstimateRequest {
  std::string method;        // a merge method (is_merge_method_name)
  int64_t merge_models = 2;  // models merged, the base not counted
  int world = 1;
  std::string max_memory;    // --max-memory; cpu= entries are the ranks' budgets
  std::string out_dtype;     // "": the checkpoint's
  int64_t process_bytes = 0; // this binary's memory before any model data
};

void print_merge_estimate(const ModelSpec& spec, const MergeEstimateRequest& request);

}  // namespace pipeprune
