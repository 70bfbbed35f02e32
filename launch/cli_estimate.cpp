// `pipeprune estimate`: what each rank of a prune job will need, before loading anything,
// from a checkpoint folder (headers only), a config.json, or a named size; with none of them,
// a quick table for the usual Llama sizes.
#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "core/common/error.h"
#include "core/memory/gpu_memory_estimate.h"
#include "core/memory/host_memory.h"
#include "core/memory/memory_estimate.h"
#include "core/merge/merge_method.h"
#include "core/model/synthetic_model.h"
#include "core/prune/prune_options.h"
#include "core/prune/sparsity_profile.h"
#include "dist/budget.h"
#include "dist/cuda_memory.h"
#include "dist/sample_split.h"
#include "dist/stage_context.h"
#include "dist/stage_plan.h"
#include "launch/commands.h"
#include "launch/estimate_merge.h"

namespace pipeprune {
namespace {

struct EstimateCli {
  std::string model;
  std::string config;
  std::string params;
  int world = 1;
  int64_t nsamples = 128;
  int64_t seqlen = 2048;
  std::string method = "wanda";
  std::string pattern = "unstructured";
  std::string max_memory;
  std::string dtype = "bf16";
  bool true_sequential = false;
  std::string calibration = "sequential";
  std::string parallel = "pipeline";
  int64_t sample_block = 0;
  std::string device = "auto";  // auto: cuda when --max-memory names a cuda budget
  std::string compute_dtype = "fp32";
  int64_t merge_models = 2;  // a merge method: models merged, the base not counted
  std::string out_dtype;     // a merge method: the output dtype ("": the checkpoint's)
  std::string sparsity_profile = "uniform";
};

// OWL's outlier pass (dist/outlier_pass.h) adds time, not memory: the same activation stores as
// the prune pass, and Wanda's statistics, which are no larger than any calibrated method's.
// The prune's own check of the profile against the method, before any table (an explicit
// list's ratios are not known here).
void check_profile(const EstimateCli& cli) {
  SparsityProfile profile;
  profile.kind = parse_sparsity_profile(cli.sparsity_profile);
  if (profile.kind != SparsityProfile::Kind::kOwl) return;
  profile.validate(SparsityPattern::parse(cli.pattern, 0.5), needs_activations(parse_prune_method(cli.method)));
}

void print_profile_note(const EstimateCli& cli) {
  if (parse_sparsity_profile(cli.sparsity_profile) != SparsityProfile::Kind::kOwl) return;
  std::printf("--sparsity-profile owl: one more pass over the dense model before pruning (per layer: one forward "
              "with Wanda's statistics, about half a Wanda prune's layer time); its peak memory is within the peak "
              "above\n");
}

bool plans_gpu(const EstimateCli& cli) {
  PIPEPRUNE_CHECK(cli.device == "auto" || cli.device == "cpu" || cli.device == "cuda", ConfigError,
                  "--device: use cpu, cuda or auto (got '" << cli.device << "')");
  if (cli.device != "auto") return cli.device == "cuda";
  return cli.max_memory.find("cuda=") != std::string::npos;
}

// "7B" -> the synth shape of that size.
std::string shape_for_params(const std::string& params) {
  static const std::vector<std::pair<std::string, std::string>> sizes = {
      {"1b", "llama-1b"}, {"3b", "llama-3b"}, {"7b", "llama-7b"}, {"8b", "llama3-8b"},
      {"13b", "llama-13b"}, {"30b", "llama-30b"}, {"33b", "llama-30b"}, {"70b", "llama-70b"}};
  std::string key = params;
  for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& [size, shape] : sizes) {
    if (key == size) return shape;
  }
  // Any named synth shape works too.
  for (const auto& name : synthetic_shape_names()) {
    if (key == name) return name;
  }
  PIPEPRUNE_FAIL(ConfigError, "--params: unknown size '" << params << "'; use 1B, 3B, 7B, 8B, 13B, 30B or 70B (or a shape: "
                                                         << "llama-7b, mistral-7b, ...)");
}

ModelSpec spec_from(const EstimateCli& cli) {
  if (!cli.model.empty()) return ModelSpec::open(cli.model);
  const auto dtype = dtype_from_option(cli.dtype);
  PIPEPRUNE_CHECK(dtype.has_value(), ConfigError, "--dtype: use bf16, fp16 or fp32 (got '" << cli.dtype << "')");
  if (!cli.config.empty()) return ModelSpec::from_config(ModelConfig::from_file(cli.config), *dtype);
  return ModelSpec::from_config(synthetic_shape_config(shape_for_params(cli.params)), *dtype);
}

EstimateSettings settings_from(const EstimateCli& cli, int64_t baseline) {
  EstimateSettings settings;
  settings.method = parse_prune_method(cli.method);
  settings.nm_pattern = SparsityPattern::parse(cli.pattern, 0.5).is_nm();
  settings.true_sequential = cli.true_sequential;
  PIPEPRUNE_CHECK(cli.calibration == "sequential" || cli.calibration == "dense", ConfigError,
                  "--calibration must be sequential or dense");
  settings.dense_calibration = cli.calibration == "dense";
  PIPEPRUNE_CHECK(cli.nsamples >= 1 && cli.seqlen >= 2, ConfigError, "--nsamples must be >= 1 and --seqlen >= 2");
  settings.nsamples = cli.nsamples;
  settings.seqlen = cli.seqlen;
  settings.baseline_bytes = baseline;
  PIPEPRUNE_CHECK(cli.compute_dtype == "fp32" || cli.compute_dtype == "bf16" || cli.compute_dtype == "fp16", ConfigError,
                  "--compute-dtype: use fp32, bf16 or fp16 (got '" << cli.compute_dtype << "')");
  settings.compute_element_size = cli.compute_dtype == "fp32" ? 4 : 2;
  PIPEPRUNE_CHECK(cli.parallel == "pipeline" || cli.parallel == "samples", ConfigError,
                  "--parallel must be pipeline or samples (got '" << cli.parallel << "')");
  PIPEPRUNE_CHECK(cli.parallel == "pipeline" || !settings.dense_calibration, ConfigError,
                  "--parallel samples runs sequential calibration; use --parallel pipeline with --calibration dense");
  if (cli.parallel == "samples") {
    settings.sample_parallel = true;
    settings.world_size = cli.world;
    settings.local_samples = SampleSplit(cli.nsamples, resolve_sample_block(cli.sample_block, cli.nsamples), cli.world).max_count();
  }
  return settings;
}

std::string fits_text(const MemoryEstimate& estimate, int64_t budget, int64_t minimum) {
  if (estimate.total() <= budget) return "yes";
  if (minimum <= budget) return fmt::format("yes, spilling {}", format_bytes(estimate.total() - budget));
  return fmt::format("NO (needs >= {})", format_bytes(minimum));
}

void print_rank_table(const EstimateCli& cli) {
  const ModelSpec spec = spec_from(cli);
  const int64_t baseline = runtime_baseline_bytes();
  const EstimateSettings settings = settings_from(cli, baseline);
  std::vector<RankResources> ranks;
  for (int r = 0; r < cli.world; ++r) {
    std::optional<int64_t> budget;
    if (!cli.max_memory.empty()) budget = budget_from_spec(cli.max_memory, r, c10::DeviceType::CPU);
    ranks.push_back(RankResources{host_name(), "cpu", budget ? *budget : default_budget_bytes(c10::Device(c10::kCPU), cli.world)});
  }
  const StagePlan plan = plan_stages(footprint_of(spec), ranks);
  std::printf("%s, %lld layers, %s of weights; %s %s, %lld samples x %lld tokens, world %d, --parallel %s\n",
              spec.model_dir.empty() ? "model from config" : spec.model_dir.string().c_str(),
              static_cast<long long>(spec.n_layers()), format_bytes(spec.bytes_total()).c_str(), cli.method.c_str(),
              cli.pattern.c_str(), static_cast<long long>(cli.nsamples), static_cast<long long>(cli.seqlen), cli.world,
              cli.parallel.c_str());
  std::printf("%4s %-12s %11s %11s %11s %11s %11s %11s %11s  %s\n", "rank", "layers", "process", "weights",
              "activations", "statistics", "scratch", "total", "budget", "fits");
  for (const Stage& stage : plan.stages) {
    const StageShare share{stage.first_layer, stage.end_layer, stage.has_embedding, stage.has_head};
    const MemoryEstimate estimate = estimate_prune_rank(spec, share, settings);
    const int64_t minimum = minimum_prune_budget(spec, share, settings);
    std::printf("%4d %-12s %11s %11s %11s %11s %11s %11s %11s  %s\n", stage.rank,
                fmt::format("{}-{}", stage.first_layer, stage.end_layer - 1).c_str(), format_bytes(estimate.baseline).c_str(),
                format_bytes(estimate.weights).c_str(), format_bytes(estimate.activations).c_str(),
                format_bytes(estimate.statistics).c_str(), format_bytes(estimate.scratch).c_str(),
                format_bytes(estimate.total()).c_str(), format_bytes(stage.budget_bytes).c_str(),
                fits_text(estimate, stage.budget_bytes, minimum).c_str());
  }
  std::printf("process: this binary's memory before any model data, measured here (%s)\n", format_bytes(baseline).c_str());
}

// A GPU's memory: the stated cuda= budget, else the free memory of this machine's GPU.
int64_t device_budget(const EstimateCli& cli, int rank) {
  if (!cli.max_memory.empty()) {
    if (const auto budget = budget_from_spec(cli.max_memory, rank, c10::DeviceType::CUDA)) return *budget;
  }
  const std::optional<int64_t> free_bytes = cuda_free_bytes(0);
  PIPEPRUNE_CHECK(free_bytes.has_value(), ConfigError,
                  "estimate --device cuda: this machine has no GPU to ask; state the GPU's memory, e.g. "
                  "--max-memory cuda=80GiB (and cpu=SIZE for each rank's host RAM)");
  return after_reserve(*free_bytes);
}

int64_t host_budget(const EstimateCli& cli, int rank) {
  if (!cli.max_memory.empty()) {
    if (const auto budget = budget_from_spec(cli.max_memory, rank, c10::DeviceType::CPU)) return *budget;
  }
  return default_budget_bytes(c10::Device(c10::kCPU), cli.world);
}

std::string gpu_row(const MemoryEstimate& part, const char* memory, int64_t budget, const std::string& fits) {
  return fmt::format("{:4} {:12} {:>6} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11}  {}\n", "", "", memory,
                     format_bytes(part.baseline), format_bytes(part.weights), format_bytes(part.activations),
                     format_bytes(part.statistics), format_bytes(part.scratch), format_bytes(part.total()),
                     format_bytes(budget), fits);
}

void print_gpu_rank_table(const EstimateCli& cli) {
  const ModelSpec spec = spec_from(cli);
  const int64_t baseline = runtime_baseline_bytes();
  const EstimateSettings settings = settings_from(cli, baseline);
  std::vector<RankResources> ranks;
  std::vector<int64_t> host_budgets;
  for (int r = 0; r < cli.world; ++r) {
    ranks.push_back(RankResources{host_name(), "cuda", device_budget(cli, r)});
    host_budgets.push_back(host_budget(cli, r));
  }
  const StagePlan plan = plan_stages(footprint_of(spec), ranks);
  std::printf("%s, %lld layers, %s of weights; %s %s, %lld samples x %lld tokens, %s compute, world %d GPUs, "
              "--parallel %s\n",
              spec.model_dir.empty() ? "model from config" : spec.model_dir.string().c_str(),
              static_cast<long long>(spec.n_layers()), format_bytes(spec.bytes_total()).c_str(), cli.method.c_str(),
              cli.pattern.c_str(), static_cast<long long>(cli.nsamples), static_cast<long long>(cli.seqlen),
              cli.compute_dtype.c_str(), cli.world, cli.parallel.c_str());
  std::printf("%4s %-12s %6s %11s %11s %11s %11s %11s %11s %11s  %s\n", "rank", "layers", "memory", "runtime", "weights",
              "activations", "statistics", "scratch", "total", "budget", "fits");
  for (const Stage& stage : plan.stages) {
    const StageShare share{stage.first_layer, stage.end_layer, stage.has_embedding, stage.has_head};
    const int64_t host = host_budgets[static_cast<size_t>(stage.rank)];
    const GpuPrunePlan gpu = plan_gpu_prune_rank(spec, share, settings, stage.budget_bytes, host);
    const bool offloaded = gpu.estimate.placement == ActivationPlacement::kHost;
    std::string device_fits = gpu.fits ? (offloaded ? "yes, activations in host RAM" : "yes") : "";
    std::string host_fits = gpu.fits ? "yes" : "";
    if (gpu.fits && gpu.estimate.host.activations_spilled > 0) {
      host_fits = fmt::format("yes, spilling {} to disk", format_bytes(gpu.estimate.host.activations_spilled));
    }
    if (!gpu.fits && gpu.device_short) {
      device_fits = fmt::format("NO (needs >= {} even with activations in host RAM)", format_bytes(gpu.least_bytes));
      host_fits = "-";
    } else if (!gpu.fits) {
      device_fits = "yes, activations in host RAM";
      host_fits = fmt::format("NO (needs >= {})", format_bytes(gpu.least_bytes));
    }
    std::string first = gpu_row(gpu.estimate.device, "cuda", stage.budget_bytes, device_fits);
    const std::string rank_layers = fmt::format("{:4} {:12}", stage.rank, fmt::format("{}-{}", stage.first_layer, stage.end_layer - 1));
    first.replace(0, rank_layers.size(), rank_layers);
    std::printf("%s%s", first.c_str(), gpu_row(gpu.estimate.host, "host", host, host_fits).c_str());
  }
  std::printf("cuda: runtime = CUDA context and libraries (%s, assumed) + %lld%% caching-allocator slack; weights = the "
              "layer's compute copy; scratch = forward/mask temporaries (+ two samples in flight when activations are "
              "in host RAM)\n",
              format_bytes(GpuOverheads{}.cuda_runtime_bytes).c_str(),
              static_cast<long long>(GpuOverheads{}.allocator_slack_percent));
  std::printf("host: runtime = this binary's memory before any model data, measured here (%s); weights = the layer as "
              "stored (and the embedding/head); scratch = MPI staging of hidden states\n",
              format_bytes(baseline).c_str());
}

// The fewest GPUs of `gpu_bytes` each that prune `spec` with everything on the GPUs (--parallel
// pipeline or samples, up to `most` GPUs; 0 when none), and whether one GPU does it with the
// activations in host RAM (host RAM taken as ample).
struct GpuCount {
  int on_device = 0;
  bool samples_mode = false;
  bool one_with_offload = false;
};

bool all_on_device(const ModelSpec& spec, const EstimateCli& cli, int world, bool samples, int64_t gpu_bytes,
                   int64_t baseline) {
  EstimateCli variant = cli;
  variant.world = world;
  variant.parallel = samples ? "samples" : "pipeline";
  const EstimateSettings settings = settings_from(variant, baseline);
  const StagePlan plan = plan_stages(footprint_of(spec), std::vector<RankResources>(world, RankResources{"h", "cuda", gpu_bytes}));
  for (const Stage& stage : plan.stages) {
    const StageShare share{stage.first_layer, stage.end_layer, stage.has_embedding, stage.has_head};
    const GpuPrunePlan gpu = plan_gpu_prune_rank(spec, share, settings, gpu_bytes, int64_t{1} << 60);
    if (!gpu.fits || gpu.estimate.placement != ActivationPlacement::kDevice) return false;
  }
  return true;
}

GpuCount fewest_gpus(const ModelSpec& spec, const EstimateCli& cli, int64_t gpu_bytes, int64_t baseline, int most) {
  GpuCount count;
  EstimateCli one = cli;
  one.world = 1;
  const GpuPrunePlan alone = plan_gpu_prune_rank(spec, StageShare{0, spec.n_layers(), true, true},
                                                 settings_from(one, baseline), gpu_bytes, int64_t{1} << 60);
  count.one_with_offload = alone.fits && alone.estimate.placement == ActivationPlacement::kHost;
  if (alone.fits && !count.one_with_offload) {
    count.on_device = 1;
    return count;
  }
  if (!alone.fits || cli.method == "magnitude") return count;
  // Pipeline ranks each hold every sample, so more of them only help through --parallel samples.
  for (int world = 2; world <= most && world <= spec.n_layers(); ++world) {
    if (all_on_device(spec, cli, world, /*samples=*/true, gpu_bytes, baseline)) {
      count.on_device = world;
      count.samples_mode = true;
      return count;
    }
  }
  return count;
}

void print_gpu_quick_table(const EstimateCli& cli, int64_t baseline) {
  const std::vector<int> sizes_gib = {24, 40, 48, 80, 141};
  constexpr int kMostGpus = 16;
  std::printf("\nfewest GPUs of each size that prune each model, bf16 checkpoint, %s compute, %lld samples x %lld "
              "tokens\n",
              cli.compute_dtype.c_str(), static_cast<long long>(cli.nsamples), static_cast<long long>(cli.seqlen));
  std::printf("%-6s %-10s", "size", "method");
  for (int gib : sizes_gib) std::printf(" %12s", fmt::format("{} GiB", gib).c_str());
  std::printf("\n");
  for (const auto& [size, shape] : std::vector<std::pair<std::string, std::string>>{
           {"1B", "llama-1b"}, {"3B", "llama-3b"}, {"7B", "llama-7b"}, {"13B", "llama-13b"}, {"30B", "llama-30b"},
           {"70B", "llama-70b"}}) {
    const ModelSpec spec = ModelSpec::from_config(synthetic_shape_config(shape), DType::kBF16);
    for (const char* method : {"magnitude", "wanda", "sparsegpt"}) {
      EstimateCli variant = cli;
      variant.method = method;
      std::printf("%-6s %-10s", size.c_str(), method);
      for (int gib : sizes_gib) {
        const GpuCount count = fewest_gpus(spec, variant, int64_t{gib} << 30, baseline, kMostGpus);
        std::string cell = count.on_device > 0 ? std::to_string(count.on_device) + (count.samples_mode ? "s" : "") : "";
        if (count.one_with_offload) cell += cell.empty() ? "1h" : " / 1h";
        if (cell.empty()) cell = "-";
        std::printf(" %12s", cell.c_str());
      }
      std::printf("\n");
    }
  }
  std::printf("N: N GPUs with everything on them; Ns: with --parallel samples (N GPUs split the samples); 1h: one GPU "
              "with the activations in host RAM; -: not within %d GPUs. Each GPU's stated size is its budget, CUDA "
              "runtime (%s) and allocator slack included; the layers stream from host RAM one at a time, so one GPU "
              "prunes any size whose single layer fits\n",
              kMostGpus, format_bytes(GpuOverheads{}.cuda_runtime_bytes).c_str());
}

void print_quick_table(const EstimateCli& cli) {
  const int64_t baseline = runtime_baseline_bytes();
  std::printf("one rank, bf16 checkpoint, fp32 compute, %lld samples x %lld tokens (peak host memory; the "
              "minimum spills activations to disk)\n",
              static_cast<long long>(cli.nsamples), static_cast<long long>(cli.seqlen));
  std::printf("%-6s %-11s %12s %14s %14s %14s %14s\n", "size", "shape", "weights", "magnitude", "wanda", "sparsegpt",
              "min (wanda)");
  for (const auto& [size, shape] : std::vector<std::pair<std::string, std::string>>{
           {"1B", "llama-1b"}, {"3B", "llama-3b"}, {"7B", "llama-7b"}, {"13B", "llama-13b"}, {"30B", "llama-30b"},
           {"70B", "llama-70b"}}) {
    const ModelSpec spec = ModelSpec::from_config(synthetic_shape_config(shape), DType::kBF16);
    const StageShare all{0, spec.n_layers(), true, true};
    EstimateCli variant = cli;
    std::vector<std::string> peaks;
    for (const char* method : {"magnitude", "wanda", "sparsegpt"}) {
      variant.method = method;
      peaks.push_back(format_bytes(estimate_prune_rank(spec, all, settings_from(variant, baseline)).total()));
    }
    variant.method = "wanda";
    const int64_t minimum = minimum_prune_budget(spec, all, settings_from(variant, baseline));
    std::printf("%-6s %-11s %12s %14s %14s %14s %14s\n", size.c_str(), shape.c_str(),
                format_bytes(spec.bytes_total()).c_str(), peaks[0].c_str(), peaks[1].c_str(), peaks[2].c_str(),
                format_bytes(minimum).c_str());
  }
  print_gpu_quick_table(cli, baseline);
}

int run(const EstimateCli& cli) {
  PIPEPRUNE_CHECK(cli.world >= 1, ConfigError, "--world must be >= 1");
  const int sources = !cli.model.empty() + !cli.config.empty() + !cli.params.empty();
  PIPEPRUNE_CHECK(sources <= 1, ConfigError, "estimate: give at most one of --model, --config and --params");
  if (is_merge_method_name(cli.method)) {
    PIPEPRUNE_CHECK(sources == 1, ConfigError,
                    "estimate --method " << cli.method << ": give the model (--model, --config or --params)");
    print_merge_estimate(spec_from(cli), MergeEstimateRequest{cli.method, cli.merge_models, cli.world, cli.max_memory,
                                                              cli.out_dtype, runtime_baseline_bytes()});
  } else if (sources == 0) {
    print_quick_table(cli);
  } else if (plans_gpu(cli)) {
    check_profile(cli);
    print_gpu_rank_table(cli);
    print_profile_note(cli);
  } else {
    check_profile(cli);
    print_rank_table(cli);
    print_profile_note(cli);
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace

CommandRunner add_estimate_command(CLI::App& app) {
  auto cli = std::make_shared<EstimateCli>();
  CLI::App* command = app.add_subcommand("estimate", "memory each rank will need, before loading anything");
  command->add_option("--model", cli->model, "checkpoint folder (only headers are read)");
  command->add_option("--config", cli->config, "a config.json instead of a checkpoint");
  command->add_option("--params", cli->params, "a named size instead: 1B, 3B, 7B, 8B, 13B, 30B, 70B");
  command->add_option("--world", cli->world, "number of ranks")->capture_default_str();
  command->add_option("--nsamples", cli->nsamples, "calibration samples")->capture_default_str();
  command->add_option("--seqlen", cli->seqlen, "tokens per sample")->capture_default_str();
  command->add_option("--method", cli->method,
                      "magnitude, wanda or sparsegpt; or a merge method (linear, task_arithmetic, ties, dare_ties, "
                      "dare_linear)")
      ->capture_default_str();
  command->add_option("--merge-models", cli->merge_models, "a merge method: the models merged (the base not counted)")
      ->capture_default_str();
  command->add_option("--out-dtype", cli->out_dtype, "a merge method: float32, float16 or bfloat16 (default: stored)");
  command->add_option("--pattern", cli->pattern, "unstructured or N:M")->capture_default_str();
  command->add_option("--sparsity-profile", cli->sparsity_profile, "uniform, owl or explicit (owl adds a dense pass)")
      ->capture_default_str();
  command->add_option("--max-memory", cli->max_memory,
                      "budget per rank, e.g. cpu=64GiB, 0:cpu=8GiB,1:cpu=16GiB, or cuda=80GiB,cpu=200GiB for GPU ranks");
  command->add_option("--device", cli->device, "cpu, cuda, or auto: cuda when --max-memory names a cuda budget")
      ->capture_default_str();
  command->add_option("--compute-dtype", cli->compute_dtype, "fp32, bf16 or fp16")->capture_default_str();
  command->add_option("--dtype", cli->dtype, "checkpoint dtype for --config/--params: bf16, fp16, fp32")->capture_default_str();
  command->add_flag("--true-sequential", cli->true_sequential, "statistics of one linear group at a time");
  command->add_option("--calibration", cli->calibration, "sequential or dense")->capture_default_str();
  command->add_option("--parallel", cli->parallel, "pipeline or samples (every rank runs every layer)")->capture_default_str();
  command->add_option("--sample-block", cli->sample_block, "--parallel samples: samples per reduction block (0: nsamples / 8)")
      ->capture_default_str();
  return [cli] { return run(*cli); };
}

}  // namespace pipeprune
