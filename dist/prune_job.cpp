#include "dist/prune_job.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <chrono>

#include <fmt/ranges.h>

#include "core/common/error.h"
#include "core/common/files.h"
#include "core/common/log.h"
#include "core/io/run_journal.h"
#include "core/tokenizer/tokenizer.h"
#include "dist/agreed_errors.h"
#include "dist/eval_job.h"
#include "dist/job_memory_log.h"
#include "dist/layer_broadcast.h"
#include "dist/memory_plan.h"
#include "dist/model_writer.h"
#include "dist/outlier_pass.h"
#include "dist/prune_report.h"
#include "dist/prune_steps.h"
#include "dist/sample_split.h"
#include "dist/stage_context.h"
#include "dist/stage_runner.h"

namespace pipeprune {
namespace {

using Clock = std::chrono::steady_clock;

// The first rank draws the windows; every rank learns their shape (or the first rank's error).
at::Tensor calibration_windows(const StageContext& context, const CalibrationOptions& calibration) {
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
  PIPEPRUNE_CHECK(seqlen <= context.config.context_positions(), ConfigError,
                  calibration.calib_tokens.string()
                      << ": windows of " << seqlen << " tokens exceed the model's context ("
                      << context.config.context_positions() << " positions)");
  return windows;  // real ids on the first rank, a tensor of the right shape elsewhere
}

// Sequential calibration: one layer-major walk; magnitude (no windows) walks without activations.
void prune_sequential(StageRunner& runner, const PruneJobOptions& options, const at::Tensor& windows,
                      const MemoryPlan& memory, const std::filesystem::path& spill_dir, PrunedLayers& pruned) {
  const StageContext& context = runner.context();
  SequentialPruneStep step(context, options.layer, pruned);
  LayerWalk walk;
  walk.tag = kTagCalibration;
  walk.windows = windows;
  walk.make_store = [&](int64_t n, const std::string& name) {
    return make_planned_store(memory, n, spill_dir, context.rank(), name);
  };
  runner.run_layers(walk, step);
}

// Sample-parallel sequential calibration: every rank walks every layer over its own samples.
void prune_samples(StageRunner& runner, const PruneJobOptions& options, const at::Tensor& windows,
                   const SampleSplit& split, const MemoryPlan& memory, const std::filesystem::path& spill_dir,
                   PrunedLayers& pruned) {
  const StageContext& context = runner.context();
  const bool read_everywhere = every_rank_reads(options.layer_source, context.plan);
  log::info("--parallel samples: every rank {} each layer", read_everywhere ? "reads" : "receives from its owner");
  SampleParallelPruneStep step(context, options.layer, split, read_everywhere, pruned);
  LayerWalk walk;
  walk.tag = kTagCalibration;
  walk.windows = windows;
  walk.make_store = [&](int64_t n, const std::string& name) {
    return make_planned_store(memory, n, spill_dir, context.rank(), name);
  };
  runner.run_layers_on_samples(walk, split, step);
}

// Dense calibration: every sample through the whole stage first, then each layer's masks.
void prune_dense(StageRunner& runner, const PruneJobOptions& options, const at::Tensor& windows, PrunedLayers& pruned) {
  DensePruneSteps steps(runner.context(), options.layer, windows.defined() ? windows.size(1) : 1, pruned);
  if (windows.defined()) steps.collect(runner, windows);
  LayerWalk masks;
  // The statistics live on the device; a CPU retry would need them all again.
  masks.retry = RetryPolicy::kFail;
  runner.run_layers(masks, steps);
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
  eval.parallel = options.parallel;
  eval.layer_source = options.layer_source;
  eval.faults = options.faults;
  try {
    const EvalResult result = run_eval_job(transport, eval);
    log::info("perplexity of the {} model on {}: {:.4f} ({} windows of {} tokens)", what,
              options.eval_data.string(), result.perplexity, result.windows, result.seqlen);
    return result.perplexity;
  } catch (const Error& e) {
    log::warn("evaluation of the {} model failed: {}", what, e.what());
    return std::nullopt;
  } catch (const c10::Error& e) {
    // LibTorch's own (a device out-of-memory in the head's log-softmax): the pruned model is
    // written already; the job reports it without this perplexity rather than failing.
    log::warn("evaluation of the {} model failed: {}", what, e.what_without_backtrace());
    return std::nullopt;
  }
}

// Everything that determines the pruned model's bytes, as named fields (core/io/run_journal.h):
// a resume must match all of them. The world size and thread count are not among them (the
// result does not depend on them); the device type and compute dtype are. First rank (it alone
// holds the calibration tokens).
RunFingerprint run_fingerprint(const PruneJobOptions& options, const StageContext& context, const at::Tensor& windows) {
  const PruneOptions& prune = options.layer.prune;
  RunFingerprint fingerprint;
  fingerprint["model"] = std::filesystem::absolute(options.model_dir).lexically_normal().string();
  std::string tensors;
  for (const std::string& name : context.checkpoint.names()) {
    const TensorInfo& info = context.checkpoint.info(name);
    tensors += fmt::format("{} {} {} {} {} {}\n", name, safetensors_name(info.dtype), fmt::join(info.shape, ","),
                           info.file_index, info.file_offset, info.n_bytes);
  }
  fingerprint["model_tensors"] = fnv1a_hex(tensors);
  fingerprint["config.json"] = fnv1a_hex(read_file(options.model_dir / "config.json"));
  fingerprint["method"] = prune_method_name(prune.method);
  fingerprint["pattern"] = prune.pattern.to_string();
  fingerprint["sparsity"] = fmt::format("{}", prune.pattern.sparsity);
  fingerprint["use_variant"] = prune.use_variant ? "true" : "false";
  fingerprint["blocksize"] = std::to_string(prune.blocksize);
  fingerprint["percdamp"] = fmt::format("{}", prune.percdamp);
  fingerprint["hinv_factor"] = hinv_factor_name(prune.hinv_factor);
  fingerprint["sparsity_profile"] = sparsity_profile_name(options.profile.kind);
  if (options.profile.kind == SparsityProfile::Kind::kOwl) {
    // The ratios follow from these and the fields above (the outlier pass is deterministic).
    fingerprint["owl_lambda"] = fmt::format("{}", options.profile.owl_lambda);
    fingerprint["owl_m"] = fmt::format("{}", options.profile.owl_m);
  }
  if (options.profile.kind == SparsityProfile::Kind::kExplicit) {
    fingerprint["layer_sparsity"] = fmt::format("{}", fmt::join(options.profile.layer_sparsity, ","));
  }
  fingerprint["true_sequential"] = options.layer.true_sequential ? "true" : "false";
  fingerprint["calibration"] = options.calibration_mode == CalibrationMode::kDense ? "dense" : "sequential";
  fingerprint["parallel"] = parallel_mode_name(options.parallel);
  if (windows.defined()) {
    const at::Tensor tokens = windows.to(at::kLong).contiguous();
    fingerprint["calibration_tokens"] =
        fmt::format("{}x{} {}", tokens.size(0), tokens.size(1), fnv1a_hex(tokens.data_ptr(), tokens.nbytes()));
    if (options.parallel == ParallelMode::kSamples) {
      fingerprint["sample_block"] = std::to_string(resolve_sample_block(options.sample_block, tokens.size(0)));
    }
  }
  fingerprint["device"] = c10::DeviceTypeName(context.device.type(), /*lower_case=*/true);
  fingerprint["compute_dtype"] = c10::toString(context.compute_dtype);
  fingerprint["max_shard_size"] = options.max_shard_bytes ? std::to_string(*options.max_shard_bytes) : "input's";
  return fingerprint;
}

EstimateSettings estimate_settings(const PruneJobOptions& options, const StageContext& context,
                                   const at::Tensor& windows) {
  EstimateSettings settings;
  settings.method = options.layer.prune.method;
  settings.nm_pattern = options.layer.prune.pattern.is_nm();
  settings.true_sequential = options.layer.true_sequential;
  settings.dense_calibration = options.calibration_mode == CalibrationMode::kDense;
  settings.nsamples = windows.defined() ? windows.size(0) : 0;
  settings.seqlen = windows.defined() ? windows.size(1) : 1;
  settings.compute_element_size = static_cast<int64_t>(c10::elementSize(context.compute_dtype));
  if (options.parallel == ParallelMode::kSamples && needs_activations(options.layer.prune.method) && windows.defined()) {
    settings.sample_parallel = true;
    settings.world_size = context.world_size();
    settings.local_samples =
        SampleSplit(windows.size(0), resolve_sample_block(options.sample_block, windows.size(0)), context.world_size())
            .max_count();
  }
  return settings;
}

// The per-layer targets the pruners apply (empty: the pattern's sparsity everywhere) and what
// the report says of them. OWL runs its outlier pass here, over the dense model.
struct ResolvedProfile {
  std::vector<double> applied;
  nlohmann::json report;
};

void log_owl_ratios(const SparsityPattern& pattern, const std::vector<double>& percent,
                    const std::vector<double>& ratios) {
  std::string table = "  layer  outliers %  sparsity\n";
  for (size_t l = 0; l < ratios.size(); ++l) table += fmt::format("  {:5d}  {:10.4f}  {:8.4f}\n", l, percent[l], ratios[l]);
  if (pattern.is_nm()) {
    log::info("OWL ratios (reported, not applied: with --pattern {} every layer is pruned {} of every {}, as the "
              "original OWL code does):\n{}", pattern.to_string(), pattern.n, pattern.m, table);
  } else {
    log::info("OWL layer sparsity (mean {:.4f}):\n{}", pattern.sparsity, table);
  }
}

// `split`: the samples' split under --parallel samples (null: the pipeline).
ResolvedProfile resolve_profile(const StageContext& context, const PruneJobOptions& options, const at::Tensor& windows,
                                const SampleSplit* split, const MemoryPlan& memory,
                                const std::filesystem::path& spill_dir) {
  const SparsityProfile& profile = options.profile;
  const SparsityPattern& pattern = options.layer.prune.pattern;
  const int64_t n_layers = context.config.n_layers;
  ResolvedProfile resolved;
  resolved.report = {{"kind", sparsity_profile_name(profile.kind)}};
  if (profile.kind == SparsityProfile::Kind::kExplicit) resolved.applied = profile.layer_sparsity;
  if (profile.kind == SparsityProfile::Kind::kOwl) {
    OutlierPassOptions pass;
    pass.owl_m = profile.owl_m;
    pass.split = split;
    pass.read_everywhere = split != nullptr && every_rank_reads(options.layer_source, context.plan);
    // A runner of its own with only the test hooks' out-of-memory faults: their kills target the
    // prune's layers (a kill at layer L must leave L's predecessors pruned, as resume expects).
    PassFaultsOnly faults(options.faults ? *options.faults : no_faults());
    StageRunner runner(context, windows.size(1), faults);
    const OutlierPassResult outliers = run_outlier_pass(runner, windows, memory, spill_dir, pass);
    const std::vector<double> ratios = owl_layer_sparsity(outliers.outlier_percent, pattern.sparsity, profile.owl_lambda);
    if (context.is_first()) log_owl_ratios(pattern, outliers.outlier_percent, ratios);
    log::info("OWL: outlier pass took {:.1f}s", outliers.seconds);
    if (!pattern.is_nm()) resolved.applied = ratios;
    resolved.report["owl_lambda"] = profile.owl_lambda;
    resolved.report["owl_m"] = profile.owl_m;
    resolved.report["outlier_percent"] = outliers.outlier_percent;
    resolved.report["owl_sparsity"] = ratios;
    resolved.report["applied"] = !pattern.is_nm();
    resolved.report["seconds_outlier_pass"] = outliers.seconds;
  }
  resolved.report["layer_sparsity"] = applied_layer_sparsity(pattern, resolved.applied, n_layers);
  return resolved;
}

}  // namespace

void PruneJobOptions::validate() const {
  layer.prune.validate();
  PIPEPRUNE_CHECK(parallel == ParallelMode::kPipeline || calibration_mode == CalibrationMode::kSequential, ConfigError,
                  "--parallel samples runs sequential calibration; --calibration dense already runs the ranks at once "
                  "(use --parallel pipeline with it)");
  PIPEPRUNE_CHECK(!resume || calibration_mode == CalibrationMode::kSequential, ConfigError,
                  "--resume continues sequential calibration; --calibration dense calibrates every layer at once, "
                  "so a dense run starts over (drop --resume, add --overwrite)");
  PIPEPRUNE_CHECK(sample_block >= 0, ConfigError,
                  "--sample-block " << sample_block << ": must be at least 1 sample (0: automatic)");
  calibration.validate(/*needs_source=*/needs_activations(layer.prune.method));
  profile.validate(layer.prune.pattern, needs_activations(layer.prune.method));
  PIPEPRUNE_CHECK(!profile.needs_outlier_pass() || calibration_mode == CalibrationMode::kSequential, ConfigError,
                  "--sparsity-profile owl runs its outlier pass layer by layer as sequential calibration does; use "
                  "--calibration sequential with it");
}

void PruneJobOptions::validate(const ModelConfig& config) const {
  validate();
  layer.prune.validate(config);
  profile.validate(layer.prune.pattern, needs_activations(layer.prune.method), config.n_layers);
}

PruneJobResult run_prune_job(Transport& transport, const PruneJobOptions& options) {
  // No autograd anywhere: every tensor of the job is an inference tensor.
  c10::InferenceMode inference_guard;
  const auto start = Clock::now();
  PruneJobResult result;
  JobMemoryLog memory_log(options.log_memory, options.memory_log_csv, options.layer.device);
  memory_log.checkpoint("start");
  const StageContext context =
      open_stage(transport, StageOptions{options.model_dir, options.layer.device, options.layer.compute_dtype,
                                         options.budget_bytes, options.host_budget_bytes});
  log::info("stage plan ({} rank{}):\n{}", context.world_size(), context.world_size() > 1 ? "s" : "",
            format_stage_plan(context.plan));
  // Every rank checks the same options against the same model: all fail alike, before any work.
  options.validate(context.config);
  CalibrationOptions calibration = options.calibration;
  const bool calibrated = needs_activations(options.layer.prune.method);
  const bool seqlen_used = (calibrated && calibration.calib_tokens.empty()) || !options.eval_data.empty();
  // Clamped (with its warning) only where --seqlen is used: a .npy brings its own window length.
  if (seqlen_used) calibration.seqlen = clamp_seqlen(calibration.seqlen, context.config.context_positions());
  const at::Tensor windows = calibrated ? calibration_windows(context, calibration) : at::Tensor();
  // Magnitude has no samples to share: every rank prunes its own layers either way.
  const bool samples_mode = options.parallel == ParallelMode::kSamples && calibrated;
  if (options.parallel == ParallelMode::kSamples && !calibrated) {
    log::info("--parallel samples: magnitude uses no calibration samples; each rank prunes its own layers");
  }
  // The one split of the samples both walks (OWL's outlier pass, the prune) use.
  std::optional<SampleSplit> sample_split;
  if (samples_mode) {
    sample_split.emplace(windows.size(0), resolve_sample_block(options.sample_block, windows.size(0)),
                         context.world_size());
    const SampleSplit& split = *sample_split;
    if (split.n_blocks() < context.world_size() && context.is_first()) {
      log::warn("--parallel samples: {} samples in blocks of {} keep only {} of {} ranks busy; lower --sample-block",
                split.n_samples(), split.block_size(), split.n_blocks(), context.world_size());
    }
    log::info("--parallel samples: {} samples in {} blocks of {}, at most {} per rank; statistics reduced to each "
              "layer's owner in block order", split.n_samples(), split.n_blocks(), split.block_size(), split.max_count());
  }
  const MemoryPlan memory = plan_prune_memory(context, estimate_settings(options, context, windows));
  log::rank_info("memory: {}", memory.describe());
  memory_log.checkpoint("planned");
  if (options.eval_dense && !options.eval_data.empty()) {
    memory_log.checkpoint("before dense eval");
    result.perplexity_dense = evaluate(transport, options, calibration.seqlen, options.model_dir, "dense");
    memory_log.checkpoint("after dense eval");
  }
  ModelWriterOptions writing{options.output, options.overwrite, options.max_shard_bytes, options.resume, {}, {}};
  if (context.is_first()) writing.fingerprint = run_fingerprint(options, context, windows);
  // --hinv-factor came after --resume; the builds before it always ran the reference factor.
  writing.fingerprint_implied_when_unrecorded = {{"hinv_factor", hinv_factor_name(HinvFactor::kReference)},
                                                 {"sparsity_profile", "uniform"}};
  ModelWriter writer(context.checkpoint, context.config, std::move(writing), transport);
  writer.begin();
  if (!writer.done_layers().empty()) {
    // Recomputing the inputs of the first unfinished layer costs one forward pass per finished
    // layer, far less than their stats passes and pruning, and needs no activation file.
    log::info("--resume: {} of {} layers were finished by the earlier run; their outputs are recomputed from the "
              "saved pruned weights, and pruning continues from the first unfinished layer",
              writer.done_layers().size(), context.config.n_layers);
  }
  const std::filesystem::path spill_dir =
      options.spill_dir.empty() ? std::filesystem::absolute(options.output).parent_path() : options.spill_dir;
  StageRunner runner(context, windows.defined() ? windows.size(1) : 1, options.faults ? *options.faults : no_faults());
  // After begin(): a refused output fails before the outlier pass. A resumed OWL run measures
  // the outliers again (deterministic, so the same ratios) rather than trusting a saved list.
  const ResolvedProfile profile = resolve_profile(context, options, windows, sample_split ? &*sample_split : nullptr, memory, spill_dir);
  if (options.profile.needs_outlier_pass()) memory_log.checkpoint("after OWL outlier pass");
  PruneJobOptions job = options;
  job.layer.layer_sparsity = profile.applied;
  PrunedLayers pruned(writer, memory_log, context.stage.n_layers(), context.config.n_layers);
  if (job.calibration_mode == CalibrationMode::kDense) {
    prune_dense(runner, job, windows, pruned);
  } else if (samples_mode) {
    prune_samples(runner, job, windows, *sample_split, memory, spill_dir, pruned);
  } else {
    prune_sequential(runner, job, windows, memory, spill_dir, pruned);
  }
  memory_log.checkpoint("before save");
  writer.finish();
  memory_log.checkpoint("after save");
  PruneReport report = gather_prune_report(context, options, windows, pruned.results(), memory);
  report.sparsity_profile = profile.report;
  for (auto& layer : report.layers) {
    layer["target_sparsity"] = profile.report["layer_sparsity"].at(layer["layer"].get<size_t>());
  }
  if (options.log_memory) report.memory_log = std::filesystem::absolute(options.memory_log_csv);
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
