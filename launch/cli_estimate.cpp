// `pipeprune estimate`: what each rank of a prune job will need, before loading anything,
// from a checkpoint folder (headers only), a config.json, or a named size; with none of them,
// a quick table for the usual Llama sizes.
#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "core/common/error.h"
#include "core/memory/host_memory.h"
#include "core/memory/memory_estimate.h"
#include "core/model/synthetic_model.h"
#include "dist/budget.h"
#include "dist/sample_split.h"
#include "dist/stage_context.h"
#include "dist/stage_plan.h"
#include "launch/commands.h"

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
};

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
  const auto dtype = dtype_from_torch_name(cli.dtype == "bf16" ? "bfloat16" : cli.dtype == "fp16" ? "float16" : cli.dtype == "fp32" ? "float32" : cli.dtype);
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
}

int run(const EstimateCli& cli) {
  PIPEPRUNE_CHECK(cli.world >= 1, ConfigError, "--world must be >= 1");
  const int sources = !cli.model.empty() + !cli.config.empty() + !cli.params.empty();
  PIPEPRUNE_CHECK(sources <= 1, ConfigError, "estimate: give at most one of --model, --config and --params");
  if (sources == 0) {
    print_quick_table(cli);
  } else {
    print_rank_table(cli);
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
  command->add_option("--method", cli->method, "magnitude, wanda or sparsegpt")->capture_default_str();
  command->add_option("--pattern", cli->pattern, "unstructured or N:M")->capture_default_str();
  command->add_option("--max-memory", cli->max_memory, "budget per rank, e.g. cpu=64GiB or 0:cpu=8GiB,1:cpu=16GiB");
  command->add_option("--dtype", cli->dtype, "checkpoint dtype for --config/--params: bf16, fp16, fp32")->capture_default_str();
  command->add_flag("--true-sequential", cli->true_sequential, "statistics of one linear group at a time");
  command->add_option("--calibration", cli->calibration, "sequential or dense")->capture_default_str();
  command->add_option("--parallel", cli->parallel, "pipeline or samples (every rank runs every layer)")->capture_default_str();
  command->add_option("--sample-block", cli->sample_block, "--parallel samples: samples per reduction block (0: nsamples / 8)")
      ->capture_default_str();
  return [cli] { return run(*cli); };
}

}  // namespace pipeprune
