// `pipeprune eval`: perplexity of a model over a text file, through the stage pipeline.
// Recipe in core/data/perplexity.h. Collective: every rank calls run_eval_job.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>

#include "dist/fault_injection.h"
#include "dist/layer_broadcast.h"
#include "dist/parallel_mode.h"
#include "dist/transport/transport.h"

namespace pipeprune {

struct EvalJobOptions {
  std::filesystem::path model_dir;
  std::filesystem::path data;
  int64_t seqlen = 2048;
  int64_t max_chunks = 0;  // 0: every window
  c10::Device device = c10::Device(c10::kCPU);
  c10::ScalarType compute_dtype = c10::ScalarType::Float;
  std::optional<int64_t> budget_bytes;
  ParallelMode parallel = ParallelMode::kPipeline;  // samples: windows split across the ranks
  LayerSource layer_source = LayerSource::kAuto;    // samples: how every rank gets each layer
  std::filesystem::path spill_dir;  // for hidden states beyond the budget; empty: the temp dir
  // When set: the token windows [n, seqlen] int64 (first rank), and every window's logits
  // [n, seqlen, vocab] float32 (last rank; held in RAM until the end), as .npy, for comparing
  // the forward with another implementation.
  std::filesystem::path save_windows;
  std::filesystem::path save_logits;
  std::shared_ptr<FaultInjector> faults;  // tests only; null: none
};

struct EvalResult {
  double perplexity = 0;
  double total_nll = 0;
  int64_t predictions = 0;
  int64_t windows = 0;
  int64_t seqlen = 0;
  double seconds = 0;
};

// Returns the same result on every rank.
EvalResult run_eval_job(Transport& transport, const EvalJobOptions& options);

}  // namespace pipeprune
