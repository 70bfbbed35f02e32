#include "dist/eval_job.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <chrono>

#include "core/common/error.h"
#include "core/common/log.h"
#include "core/common/progress.h"
#include "core/data/calibration.h"
#include "core/data/perplexity.h"
#include "core/data/text_source.h"
#include "core/io/npy.h"
#include "core/tokenizer/tokenizer.h"
#include "dist/agreed_errors.h"
#include "dist/memory_plan.h"
#include "dist/stage_model.h"
#include "dist/sample_parallel_eval.h"
#include "dist/sample_split.h"
#include "dist/streamed_eval.h"

namespace pipeprune {
namespace {

// The first rank tokenizes and cuts the windows; every rank receives them (the last needs the
// targets, the others the shapes).
at::Tensor eval_windows(const StageContext& context, const EvalJobOptions& options, int64_t seqlen) {
  at::Tensor windows;
  run_on_root(*context.transport, 0, [&] {
      const TextSource text = read_text_source(options.data);
      std::string joined;
      for (const auto& doc : text.documents) {
        if (!joined.empty()) joined += "\n\n";
        joined += doc;
      }
      PIPEPRUNE_CHECK(!joined.empty(), ConfigError, options.data.string() << ": evaluation text is empty");
      const auto tokenizer = load_tokenizer(context.model_dir);
      windows = make_eval_windows(tokenizer->encode_with_bos(joined), seqlen, options.max_chunks,
                                  options.data.string());
  });
  return context.transport->broadcast(windows, BroadcastOptions{0});
}

}  // namespace

EvalResult run_eval_job(Transport& transport, const EvalJobOptions& options) {
  c10::InferenceMode inference_guard;
  const auto start = std::chrono::steady_clock::now();
  const StageContext context =
      open_stage(transport, StageOptions{options.model_dir, options.device, options.compute_dtype, options.budget_bytes,
                                         std::nullopt});
  const int64_t seqlen = clamp_seqlen(options.seqlen, context.config.context_positions());
  const at::Tensor windows = eval_windows(context, options, seqlen);
  if (!options.save_windows.empty()) {
    run_on_root(transport, 0, [&] { write_npy(options.save_windows, windows); });
  }
  // Every window's logits reach the last rank, in order: accumulated, and kept when asked for.
  PerplexityAccumulator accumulator;
  std::vector<at::Tensor> kept_logits;
  const auto on_window = [&](const at::Tensor& logits, const at::Tensor& tokens) {
    accumulator.add(logits, tokens);
    if (!options.save_logits.empty()) kept_logits.push_back(logits.to(at::kCPU, at::kFloat));
  };
  // Layers resident when they fit this rank's budget (windows then flow through the stages one
  // at a time); otherwise streamed from the checkpoint one layer at a time over all windows.
  FaultInjector& faults = options.faults ? *options.faults : no_faults();
  if (options.parallel == ParallelMode::kSamples) {
    PIPEPRUNE_CHECK(options.save_logits.empty(), ConfigError,
                    "--save-logits keeps every window's logits on the last rank; use --parallel pipeline with it");
    // Every rank streams every layer over its own windows (at most ceil(n / W) of them).
    const SampleSplit split(windows.size(0), 1, context.world_size());
    MemoryPlan memory = plan_eval_memory(context, split.max_count(), seqlen);
    log::rank_info("eval (--parallel samples): {} of {} windows on this rank, layers streamed from their owners",
                   split.count_of(context.rank()), windows.size(0));
    const std::filesystem::path spill_dir =
        options.spill_dir.empty() ? std::filesystem::temp_directory_path() : options.spill_dir;
    StageRunner runner(context, seqlen, faults);
    const WindowSums sums = evaluate_on_samples(runner, windows, memory, spill_dir,
                                                every_rank_reads(options.layer_source, context.plan));
    EvalResult result;
    result.total_nll = sums.total_nll;
    result.predictions = sums.predictions;
    result.perplexity = std::exp(result.total_nll / static_cast<double>(result.predictions));
    result.windows = windows.size(0);
    result.seqlen = seqlen;
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
  }
  const MemoryPlan memory = plan_eval_memory(context, windows.size(0), seqlen);
  if (memory.resident) {
    log::rank_info("eval: layers resident, {}", memory.describe());
    StageModel model(context, seqlen, faults);
    Progress progress("eval window", windows.size(0));
    for (int64_t w = 0; w < windows.size(0); ++w) {
      const at::Tensor tokens = windows.slice(0, w, w + 1);
      const at::Tensor logits = model.pipeline_forward(tokens, kTagEvaluation);
      if (context.is_last()) on_window(logits, tokens);
      progress.update(w + 1);
    }
  } else {
    log::rank_info("eval: layers streamed one at a time, {}", memory.describe());
    const std::filesystem::path spill_dir =
        options.spill_dir.empty() ? std::filesystem::temp_directory_path() : options.spill_dir;
    StageRunner runner(context, seqlen, faults);
    evaluate_streamed(runner, windows, memory, spill_dir, on_window);
  }
  if (!options.save_logits.empty()) {
    run_on_root(transport, context.world_size() - 1, [&] { write_npy(options.save_logits, at::cat(kept_logits)); });
  }
  // The last rank holds the sums; every rank returns them.
  at::Tensor sums = at::tensor({accumulator.total_nll(), static_cast<double>(accumulator.predictions())}, at::kDouble);
  sums = transport.broadcast(sums, BroadcastOptions{context.world_size() - 1});
  EvalResult result;
  result.total_nll = sums[0].item<double>();
  result.predictions = static_cast<int64_t>(sums[1].item<double>());
  result.perplexity = std::exp(result.total_nll / static_cast<double>(result.predictions));
  result.windows = windows.size(0);
  result.seqlen = seqlen;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace pipeprune
