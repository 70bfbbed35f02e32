// OWL's outlier pass (core/prune/sparsity_profile.h): before any pruning, the calibration
// samples go through the dense model, layer by layer, through the same stage runner and the same
// calibration mode as the prune: each layer's Wanda statistics are collected over the dense
// inputs (the outputs of the dense layers before it, as the original's loop does) and turned
// into its outlier density D_l (core/prune/outlier_density.h); the layer's dense outputs feed the
// next layer. Nothing is written. Its memory is the prune pass's or less: the same activation
// stores, Wanda's statistics (cols floats per input) instead of the method's.
//  - pipeline: each rank walks its own layers, activations go rank to rank;
//  - samples: every rank walks every layer over its share of the samples, the statistics' block
//    sums are reduced in block order to the layer's owner (so D_l is the same at every world
//    size), which computes D_l.
// Collective: every rank returns every layer's D_l (in percent, by model layer).
#pragma once

#include <filesystem>
#include <vector>

#include <ATen/core/Tensor.h>

#include "core/prune/layer_pruner.h"
#include "dist/memory_plan.h"
#include "dist/sample_split.h"
#include "dist/stage_runner.h"

namespace pipeprune {

struct OutlierPassOptions {
  double owl_m = 5;
  // --parallel samples: the split of the samples (null: pipeline), and whether every rank reads
  // each layer from the checkpoint (dist/layer_broadcast.h).
  const SampleSplit* split = nullptr;
  bool read_everywhere = false;
};

struct OutlierPassResult {
  std::vector<double> outlier_percent;  // by model layer
  double seconds = 0;                   // this rank's wall time in the pass
};

OutlierPassResult run_outlier_pass(StageRunner& runner, const at::Tensor& windows, const MemoryPlan& memory,
                                   const std::filesystem::path& spill_dir, const OutlierPassOptions& options);

}  // namespace pipeprune
