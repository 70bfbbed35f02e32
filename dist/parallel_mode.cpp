#include "dist/parallel_mode.h"

#include "core/common/error.h"

namespace pipeprune {

ParallelMode parse_parallel_mode(const std::string& name) {
  if (name == "pipeline") return ParallelMode::kPipeline;
  if (name == "samples") return ParallelMode::kSamples;
  PIPEPRUNE_FAIL(ConfigError, "--parallel must be pipeline or samples (got '" << name << "')");
}

const char* parallel_mode_name(ParallelMode mode) { return mode == ParallelMode::kSamples ? "samples" : "pipeline"; }

}  // namespace pipeprune
