#include "dist/prune_job.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cstdlib>

#include "core/common/error.h"
#include "core/common/log.h"
#include "core/common/progress.h"
#include "core/memory/host_memory.h"
#include "core/model/decoder.h"
#include "core/tokenizer/tokenizer.h"
#include "dist/activation_exchange.h"
#include "dist/device_fallback.h"
#include "dist/eval_job.h"
#include "dist/model_writer.h"
#include "dist/job_memory_log.h"
#include "dist/memory_plan.h"
#include "dist/prune_report.h"
#include "dist/root_work.h"
#include "dist/stage_context.h"

namespace pipeprune {
namespace {

using Clock = std::chrono::steady_clock;

// Test hook: PIPEPRUNE_TEST_FAIL_LAYER=N makes the rank that owns layer N throw in the middle
// of that layer, so the fault tests can check that the whole job stops cleanly.
void maybe_fail_for_test(int64_t layer) {
  const char* value = std::getenv("PIPEPRUNE_TEST_FAIL_LAYER");
  if (value != nullptr && std::atoll(value) == layer) {
    PIPEPRUNE_FAIL(Error, "test hook PIPEPRUNE_TEST_FAIL_LAYER: failing in layer " << layer);
  }
}

// What the drivers of one rank's part of the job share.
struct PruneRun {
  const StageContext& context;
  const PruneJobOptions& options;
  const at::Tensor& windows;  // real ids on the first rank, the right shape elsewhere
  ModelWriter& writer;
  const MemoryPlan& memory;
  JobMemoryLog& memory_log;
  std::filesystem::path spill_dir;
};

// The first rank draws the windows; every rank learns their shape (or the first rank's error).
at::Tensor calibration_windows(const StageContext& context, const PruneJobOptions& options,
                               CalibrationOptions calibration) {
  Transport& transport = *context.transport;
  at::Tensor windows;
  run_on_root(transport, 0, [&] {
    // Explicit windows need no tokenizer (synthetic models have none).
    const auto tokenizer = calibration.calib_data.empty() ? nullptr : load_tokenizer(context.model_dir);
    windows = load_calibration_tokens(calibration, tokenizer.get(), context.config.vocab_size);
  });
  at::Tensor shape = context.is_first() ? at::tensor({windows.size(0), windows.size(1)}, at::kLong)
                                        : at::zeros({2}, at::kLong);
  shape = transport.broadcast(shape, BroadcastOptions{0});
  if (!context.is_first()) windows = at::empty({shape[0].item<int64_t>(), shape[1].item<int64_t>()}, at::kLong);
  const int64_t seqlen = windows.size(1);
  PIPEPRUNE_CHECK(seqlen <= context.config.max_position_embeddings, ConfigError,
                  options.calibration.calib_tokens.string()
                      << ": windows of " << seqlen << " tokens exceed the model's context ("
                      << context.config.max_position_embeddings << ")");
  return windows;  // real ids on the first rank, a tensor of the right shape elsewhere
}

// Activations entering this stage's first layer: embedded on the first rank, received otherwise.
void stage_inputs(const StageContext& context, const at::Tensor& windows, ActivationStore& inputs) {
  c10::InferenceMode inference_guard;
  const std::vector<int64_t> shape{1, windows.size(1), context.config.hidden_size};
  if (!context.is_first()) {
    receive_activations(*context.transport, context.previous_rank(), shape, context.compute_dtype, context.device,
                        kTagCalibration, inputs);
    return;
  }
  // Rows are looked up in the stored dtype and upcast afterwards: the same values as upcasting
  // the whole table first, without holding a compute copy of it.
  const EmbeddingWeights embedding = load_embedding(context.checkpoint, context.config);
  for (int64_t s = 0; s < windows.size(0); ++s) {
    inputs.put(s, embed_tokens(embedding, windows.slice(0, s, s + 1)).to(context.device, context.compute_dtype));
  }
}

void log_layer_done(const LayerPruneResult& result, int64_t n_layers, Progress& progress, int64_t done) {
  int64_t zeros = 0;
  int64_t numel = 0;
  for (const auto& linear : result.linears) {
    zeros += linear.zeros;
    numel += linear.numel;
  }
  progress.update(done, fmt::format("model layer {}/{} sparsity {:.4f} (stats {:.2f}s, prune {:.2f}s, output {:.2f}s)",
                                    result.layer + 1, n_layers, numel ? static_cast<double>(zeros) / numel : 0.0,
                                    result.seconds_stats, result.seconds_prune, result.seconds_output));
}

// Prunes one layer on the compute device; if the device runs out of memory in any pass, frees
// its caches, reloads the layer and prunes it again on the CPU (the next layer tries the
// device again).
LayerPruneResult prune_layer_with_fallback(const StageContext& context, const LayerPruneOptions& layer_options,
                                           int64_t layer, DecoderLayerWeights& stored, const RopeTables& rope,
                                           const ActivationStore* inputs, ActivationStore* outputs) {
  const char* operation = "load";
  try {
    return prune_layer_sequential(stored, context.config, rope, inputs, outputs, layer_options, &operation);
  } catch (...) {
    if (!is_out_of_memory(std::current_exception())) throw;
  }
  log::warn("layer {}/{}: the {} pass ran out of memory on {}; retrying the layer on cpu", layer + 1,
            context.config.n_layers, operation, layer_options.device.str());
  release_device_caches();
  LayerPruneOptions on_cpu = layer_options;
  on_cpu.device = c10::Device(c10::kCPU);
  const RopeTables cpu_rope = layer_options.device.is_cpu() ? rope : make_rope_tables(context.config, rope.n_positions(), on_cpu.device);
  stored = load_decoder_layer(context.checkpoint, context.config, layer);
  return prune_layer_sequential(stored, context.config, cpu_rope, inputs, outputs, on_cpu);
}

std::vector<LayerPruneResult> prune_sequential(const PruneRun& run) {
  const StageContext& context = run.context;
  const PruneJobOptions& options = run.options;
  const at::Tensor& windows = run.windows;
  const bool calibrated = needs_activations(options.layer.prune);
  const int64_t nsamples = calibrated ? windows.size(0) : 0;
  auto inputs = make_planned_store(run.memory, nsamples, run.spill_dir, context.rank(), "a");
  auto outputs = make_planned_store(run.memory, context.stage.n_layers() >= 2 ? nsamples : 0, run.spill_dir,
                                    context.rank(), "b");
  std::unique_ptr<ActivationStore> sender;
  if (calibrated) {
    stage_inputs(context, windows, *inputs);
    if (!context.is_last()) {
      sender = std::make_unique<SendingActivationStore>(*context.transport, context.next_rank(), nsamples,
                                                        kTagCalibration);
    }
  }
  const RopeTables rope = make_rope_tables(context.config, calibrated ? windows.size(1) : 1, context.device);
  std::vector<LayerPruneResult> results;
  Progress progress("stage layer", context.stage.n_layers(), 0.0, /*every_rank=*/true);
  for (int64_t layer = context.stage.first_layer; layer < context.stage.end_layer; ++layer) {
    DecoderLayerWeights stored = load_decoder_layer(context.checkpoint, context.config, layer);
    const bool stage_last_layer = layer + 1 == context.stage.end_layer;
    // The last layer of a stage streams its outputs to the next rank; of the model, drops them.
    ActivationStore* out = nullptr;
    if (calibrated) out = stage_last_layer ? sender.get() : outputs.get();
    maybe_fail_for_test(layer);
    results.push_back(prune_layer_with_fallback(context, options.layer, layer, stored, rope,
                                                calibrated ? inputs.get() : nullptr, out));
    run.writer.write_layer(stored);
    std::swap(inputs, outputs);
    log_layer_done(results.back(), context.config.n_layers, progress, layer - context.stage.first_layer + 1);
    return_free_memory();
    run.memory_log.checkpoint(fmt::format("layer {} done", layer));
  }
  return results;
}

// Dense calibration: every owned layer sees dense activations, so each sample runs through all
// of this stage's layers at once and moves on to the next rank while the next sample starts.
std::vector<LayerPruneResult> prune_dense(const PruneRun& run) {
  const StageContext& context = run.context;
  const PruneJobOptions& options = run.options;
  const at::Tensor& windows = run.windows;
  const bool calibrated = needs_activations(options.layer.prune);
  const RopeTables rope = make_rope_tables(context.config, calibrated ? windows.size(1) : 1, context.device);
  std::vector<DecoderLayerWeights> stored;
  for (int64_t layer = context.stage.first_layer; layer < context.stage.end_layer; ++layer) {
    stored.push_back(load_decoder_layer(context.checkpoint, context.config, layer));
  }
  std::vector<std::unique_ptr<LayerPruneSession>> sessions;
  for (auto& layer : stored) {
    sessions.push_back(std::make_unique<LayerPruneSession>(layer, context.config, rope, options.layer));
  }
  if (calibrated) {
    auto inputs = make_memory_activation_store(1);
    const std::vector<int64_t> shape{1, windows.size(1), context.config.hidden_size};
    std::unique_ptr<EmbeddingWeights> embedding;
    if (context.is_first()) {
      embedding = std::make_unique<EmbeddingWeights>(load_embedding(context.checkpoint, context.config));
    }
    Progress progress("dense stats pass, sample", windows.size(0), 2.0, /*every_rank=*/true);
    for (int64_t s = 0; s < windows.size(0); ++s) {
      c10::InferenceMode inference_guard;
      at::Tensor hidden;
      if (context.is_first()) {
        hidden = embed_tokens(*embedding, windows.slice(0, s, s + 1)).to(context.device, context.compute_dtype);
      } else {
        RecvOptions recv{kTagCalibration, TensorExpectation{context.compute_dtype, shape}, context.device};
        hidden = context.transport->recv(context.previous_rank(), recv);
      }
      for (auto& session : sessions) {
        const auto start = Clock::now();
        hidden = session->forward_and_collect(hidden);
        session->add_stats_seconds(std::chrono::duration<double>(Clock::now() - start).count());
      }
      if (!context.is_last()) context.transport->send(hidden, context.next_rank(), SendOptions{kTagCalibration});
      progress.update(s + 1);
    }
  }
  std::vector<LayerPruneResult> results;
  Progress progress("stage layer", context.stage.n_layers(), 0.0, /*every_rank=*/true);
  for (size_t i = 0; i < sessions.size(); ++i) {
    maybe_fail_for_test(stored[i].layer);
    while (!sessions[i]->done()) sessions[i]->prune_current_group();
    run.writer.write_layer(stored[i]);
    results.push_back(sessions[i]->result());
    run.memory_log.checkpoint(fmt::format("layer {} done", stored[i].layer));
    log_layer_done(results.back(), context.config.n_layers, progress, static_cast<int64_t>(i) + 1);
  }
  return results;
}

std::optional<double> evaluate(Transport& transport, const PruneJobOptions& options, int64_t seqlen,
                               const std::filesystem::path& model_dir, const char* what) {
  EvalJobOptions eval;
  eval.model_dir = model_dir;
  eval.data = options.eval_data;
  eval.seqlen = seqlen;
  eval.max_chunks = options.eval_max_chunks;
  eval.device = options.layer.device;
  eval.compute_dtype = options.layer.compute_dtype;
  eval.budget_bytes = options.budget_bytes;
  try {
    const EvalResult result = run_eval_job(transport, eval);
    log::info("perplexity of the {} model on {}: {:.4f} ({} windows of {} tokens)", what,
              options.eval_data.string(), result.perplexity, result.windows, result.seqlen);
    return result.perplexity;
  } catch (const Error& e) {
    log::warn("evaluation of the {} model failed: {}", what, e.what());
    return std::nullopt;
  }
}


EstimateSettings estimate_settings(const PruneJobOptions& options, const StageContext& context,
                                   const at::Tensor& windows) {
  EstimateSettings settings;
  settings.method = options.layer.prune.method;
  settings.nm_pattern = options.layer.prune.pattern.is_nm();
  settings.true_sequential = options.layer.true_sequential;
  settings.dense_calibration = options.layer.calibration == CalibrationMode::kDense;
  settings.nsamples = windows.defined() ? windows.size(0) : 0;
  settings.seqlen = windows.defined() ? windows.size(1) : 1;
  settings.compute_element_size = static_cast<int64_t>(c10::elementSize(context.compute_dtype));
  return settings;
}

}  // namespace

PruneJobResult run_prune_job(Transport& transport, const PruneJobOptions& options) {
  // No autograd anywhere: every tensor of the job is an inference tensor.
  c10::InferenceMode inference_guard;
  const auto start = Clock::now();
  PruneJobResult result;
  JobMemoryLog memory_log(options.log_memory, options.memory_log_csv, options.layer.device);
  memory_log.checkpoint("start");
  const StageContext context =
      open_stage(transport, StageOptions{options.model_dir, options.layer.device, options.layer.compute_dtype,
                                         options.budget_bytes});
  log::info("stage plan ({} rank{}):\n{}", context.world_size(), context.world_size() > 1 ? "s" : "",
            format_stage_plan(context.plan));
  // An N:M pattern that does not divide a linear's inputs is refused before any work.
  for (LinearKind kind : kAllLinears) {
    options.layer.prune.pattern.check_columns(linear_shape(context.config, kind)[1],
                                              std::string("model.layers.*.") + linear_name(kind) + ".weight");
  }
  CalibrationOptions calibration = options.calibration;
  const bool calibrated = needs_activations(options.layer.prune);
  const bool seqlen_used = (calibrated && calibration.calib_tokens.empty()) || !options.eval_data.empty();
  // Clamped (with its warning) only where --seqlen is used: a .npy brings its own window length.
  if (seqlen_used) calibration.seqlen = clamp_seqlen(calibration.seqlen, context.config.max_position_embeddings);
  const at::Tensor windows = calibrated ? calibration_windows(context, options, calibration) : at::Tensor();
  const MemoryPlan memory = plan_prune_memory(context, estimate_settings(options, context, windows));
  log::rank_info("memory: {}", memory.describe());
  memory_log.checkpoint("planned");
  if (options.eval_dense && !options.eval_data.empty()) {
    memory_log.checkpoint("before dense eval");
    result.perplexity_dense = evaluate(transport, options, calibration.seqlen, options.model_dir, "dense");
    memory_log.checkpoint("after dense eval");
  }
  ModelWriter writer(context.checkpoint, ModelWriterOptions{options.output, options.overwrite, options.max_shard_bytes},
                     transport);
  writer.begin();
  const std::filesystem::path spill_dir =
      options.spill_dir.empty() ? std::filesystem::absolute(options.output).parent_path() : options.spill_dir;
  const PruneRun run{context, options, windows, writer, memory, memory_log, spill_dir};
  const std::vector<LayerPruneResult> layers =
      options.layer.calibration == CalibrationMode::kDense ? prune_dense(run) : prune_sequential(run);
  memory_log.checkpoint("before save");
  writer.finish();
  memory_log.checkpoint("after save");
  PruneReport report = gather_prune_report(context, options, windows, layers, memory);
  result.overall_sparsity = report.overall_sparsity();
  log::info("overall sparsity of the pruned linears: {:.4f}", result.overall_sparsity);
  if (!options.eval_data.empty()) {
    memory_log.checkpoint("before eval");
    result.perplexity_pruned = evaluate(transport, options, calibration.seqlen, options.output, "pruned");
    memory_log.checkpoint("after eval");
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  report.perplexity_dense = result.perplexity_dense;
  report.perplexity_pruned = result.perplexity_pruned;
  report.seconds_total = result.seconds;
  memory_log.checkpoint("end");
  memory_log.finish(transport);
  if (!options.report.empty()) write_prune_report(context, report, options.report);
  return result;
}

}  // namespace pipeprune
