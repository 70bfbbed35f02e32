// How the ranks of a job share the work (DESIGN.md, "Two ways to spread the work").
//  - pipeline: each rank runs its own layers over every sample; activations travel rank to
//    rank. Capacity; with sequential calibration the ranks work one after another.
//  - samples: every rank runs every layer over its share of the samples (dist/sample_split.h);
//    statistics are reduced to the layer's owner, which prunes and broadcasts the pruned
//    weights; evaluation splits the windows the same way. Speed at the sequential method.
#pragma once

#include <string>

namespace pipeprune {

enum class ParallelMode { kPipeline, kSamples };
// "pipeline" | "samples"; ConfigError naming --parallel otherwise.
ParallelMode parse_parallel_mode(const std::string& name);
const char* parallel_mode_name(ParallelMode mode);

}  // namespace pipeprune
