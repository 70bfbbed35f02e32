// `pipeprune synth`: a checkpoint folder with random weights in the shape of a published model
// (or of any config.json), for benchmarks and tests without downloads. See
// core/model/synthetic_model.h for what the weights are and how they are written.
#include <ATen/Parallel.h>

#include <memory>
#include <thread>

#include "core/common/error.h"
#include "core/common/log.h"
#include "core/common/progress.h"
#include "core/memory/host_memory.h"
#include "core/model/synthetic_model.h"
#include "launch/commands.h"

namespace pipeprune {
namespace {

struct SynthCli {
  std::string shape;
  std::string config;
  std::string output;
  std::string dtype = "bf16";
  uint64_t seed = 0;
  int64_t layers = 0;
  bool overwrite = false;
  std::string tokenizer_from;
  std::string max_shard_size = "5GB";
  int threads = 0;
  bool quiet = false;
};

DType parse_storage_dtype(const std::string& name) {
  if (name == "bf16" || name == "bfloat16") return DType::kBF16;
  if (name == "fp16" || name == "float16") return DType::kF16;
  if (name == "fp32" || name == "float32") return DType::kF32;
  PIPEPRUNE_FAIL(ConfigError, "--dtype: unknown dtype '" << name << "' (use bf16, fp16 or fp32)");
}

int run(const SynthCli& cli) {
  log::set_quiet(cli.quiet);
  PIPEPRUNE_CHECK(cli.shape.empty() != cli.config.empty(), ConfigError,
                  "synth: give exactly one of --shape NAME or --config config.json");
  PIPEPRUNE_CHECK(cli.threads >= 0, ConfigError, "--threads must be >= 0 (got " << cli.threads << ")");
  at::set_num_threads(cli.threads > 0 ? cli.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));

  SynthOptions options;
  options.config = cli.shape.empty() ? ModelConfig::from_file(cli.config) : synthetic_shape_config(cli.shape);
  PIPEPRUNE_CHECK(cli.layers >= 0 && cli.layers <= options.config.n_layers, ConfigError,
                  "--layers " << cli.layers << ": the model has " << options.config.n_layers
                              << " layers; give 1.." << options.config.n_layers << " (0 keeps all)");
  if (cli.layers > 0) options.config.n_layers = cli.layers;
  options.dtype = parse_storage_dtype(cli.dtype);
  options.seed = cli.seed;
  options.output = cli.output;
  options.overwrite = cli.overwrite;
  options.tokenizer_from = cli.tokenizer_from;
  options.max_shard_bytes = parse_bytes(cli.max_shard_size, "--max-shard-size");
  PIPEPRUNE_CHECK(options.max_shard_bytes > 0, ConfigError, "--max-shard-size must be positive");
  const SynthResult result = write_synthetic_model(options);
  log::info("synth: wrote {:.3f}B parameters ({}) in {} file(s) to {} in {}", result.n_parameters * 1e-9,
            format_bytes(result.n_bytes), result.n_files, cli.output, format_duration(result.seconds));
  if (options.tokenizer_from.empty()) {
    log::info("synth: no tokenizer written: prune with --calib-tokens, or re-run with --tokenizer-from DIR");
  }
  return 0;
}

}  // namespace

CommandRunner add_synth_command(CLI::App& app) {
  auto cli = std::make_shared<SynthCli>();
  CLI::App* command = app.add_subcommand("synth", "write a random-weight checkpoint of a published model's shape");
  std::string names;
  for (const std::string& name : synthetic_shape_names()) names += (names.empty() ? "" : ", ") + name;
  CLI::Option* shape = command->add_option("--shape", cli->shape, "named shape: " + names);
  CLI::Option* config = command->add_option("--config", cli->config, "a config.json (or a folder holding one) instead of --shape");
  shape->excludes(config);
  command->add_option("--output", cli->output, "folder to write (must not exist)")->required();
  command->add_option("--dtype", cli->dtype, "storage dtype: bf16, fp16 or fp32")->capture_default_str();
  command->add_option("--seed", cli->seed, "seed of the random weights")->capture_default_str();
  command->add_option("--layers", cli->layers, "keep only the first N decoder layers (0: all)")->capture_default_str();
  command->add_flag("--overwrite", cli->overwrite, "replace the output folder if it exists");
  command->add_option("--tokenizer-from", cli->tokenizer_from,
                      "copy tokenizer files from this model folder (default: none; prune then needs --calib-tokens)");
  command->add_option("--max-shard-size", cli->max_shard_size, "largest safetensors shard")->capture_default_str();
  command->add_option("--threads", cli->threads, "threads generating weights (default: all cores)");
  command->add_flag("--quiet,-q", cli->quiet, "print warnings and errors only");
  return [cli] { return run(*cli); };
}

}  // namespace pipeprune
