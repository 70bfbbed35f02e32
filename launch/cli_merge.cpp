// `pipeprune merge`: mergekit's merge methods over Hugging Face checkpoint folders of one base,
// with PEFT LoRA adapters folded in (dist/merge_job.h). Defaults are mergekit's for each method.
#include <filesystem>
#include <memory>
#include <sstream>

#include "core/common/error.h"
#include "core/common/log.h"
#include "core/common/progress.h"
#include "core/memory/host_memory.h"
#include "dist/merge_job.h"
#include "launch/commands.h"
#include "launch/common_options.h"
#include "launch/merge_config.h"
#include "launch/test_hooks.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;

struct MergeCli {
  CommonOptions common;
  std::string method;
  std::string base;
  std::string models;
  std::string weights;
  std::string density;
  double lambda = 1.0;
  std::string normalize;  // "": the method's default
  std::string rescale;    // "": the method's default
  std::string consensus;  // "": sum where the method has one
  uint64_t seed = 0;
  std::string out_dtype;
  std::string lora;
  std::string lora_base;
  std::string output;
  bool overwrite = false;
  std::string max_shard_size;
  std::string report;
};

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::vector<double> parse_numbers(const std::string& text, const std::string& flag) {
  std::vector<double> out;
  for (const std::string& item : split_list(text)) {
    const std::optional<double> value = parse_number(item);
    PIPEPRUNE_CHECK(value.has_value(), ConfigError,
                    flag << ": '" << item << "' is not a number (give one per model, comma-separated)");
    out.push_back(*value);
  }
  return out;
}

// One value for every model, or one per model.
std::vector<double> per_model(const std::string& text, size_t models, double fallback, const std::string& flag) {
  if (text.empty()) return std::vector<double>(models, fallback);
  std::vector<double> values = parse_numbers(text, flag);
  if (values.size() == 1) return std::vector<double>(models, values.front());
  PIPEPRUNE_CHECK(values.size() == models, ConfigError,
                  flag << " has " << values.size() << " values for " << models << " models; give one, or one per model");
  return values;
}

// "PATH" or "PATH+ADAPTER" (mergekit's syntax). A folder whose own name holds '+' is a path.
MergeModelInput parse_model(const std::string& entry) {
  MergeModelInput input;
  if (fs::is_directory(entry)) {
    input.model = entry;
    return input;
  }
  const size_t plus = entry.rfind('+');
  PIPEPRUNE_CHECK(plus != std::string::npos && plus > 0 && plus + 1 < entry.size(), ConfigError,
                  "--models: " << entry << " is not a folder (give model folders, or MODEL+ADAPTER)");
  input.model = entry.substr(0, plus);
  input.adapter = entry.substr(plus + 1);
  PIPEPRUNE_CHECK(fs::is_directory(input.model), ConfigError, "--models: " << input.model.string() << " is not a folder");
  PIPEPRUNE_CHECK(fs::is_directory(input.adapter), ConfigError,
                  "--models: adapter " << input.adapter.string() << " (of " << entry << ") is not a folder");
  return input;
}

std::optional<DType> parse_out_dtype(const std::string& name) {
  if (name.empty()) return std::nullopt;
  const std::optional<DType> dtype = dtype_from_option(name);
  PIPEPRUNE_CHECK(dtype.has_value(), ConfigError,
                  "--out-dtype: unknown dtype '" << name << "' (use float32, float16 or bfloat16)");
  return dtype;
}

bool parse_flag_value(const std::string& text, const std::string& flag) {
  if (text == "1" || text == "true") return true;
  if (text == "0" || text == "false") return false;
  PIPEPRUNE_FAIL(ConfigError, flag << ": '" << text << "' (use 0 or 1)");
}

MergeJobOptions job_options(const MergeCli& cli) {
  MergeJobOptions job;
  job.lora_only = cli.method == "lora";
  if (job.lora_only) {
    PIPEPRUNE_CHECK(!cli.lora.empty(), ConfigError, "--method lora: give the adapter with --lora ADAPTER");
    const std::string base = cli.lora_base.empty() ? cli.base : cli.lora_base;
    PIPEPRUNE_CHECK(!base.empty(), ConfigError, "--method lora: give the model it adapts with --lora-base DIR");
    PIPEPRUNE_CHECK(cli.models.empty(), ConfigError,
                    "--method lora folds one adapter into --lora-base; to merge models too, give them as "
                    "--models MODEL+ADAPTER with another --method");
    job.models.push_back(parse_model(base + "+" + cli.lora));
    job.base = base;
  } else {
    PIPEPRUNE_CHECK(cli.lora.empty() && cli.lora_base.empty(), ConfigError,
                    "--lora/--lora-base are for --method lora; with --method " << cli.method
                                                                            << " give --models MODEL+ADAPTER");
    job.settings = default_settings(parse_merge_method(cli.method));
    job.base = cli.base;
    for (const std::string& entry : split_list(cli.models)) job.models.push_back(parse_model(entry));
    PIPEPRUNE_CHECK(!job.models.empty(), ConfigError, "--models: give the models to merge, comma-separated");
    const std::vector<double> weights = per_model(cli.weights, job.models.size(), 1.0, "--weights");
    const std::vector<double> densities = per_model(cli.density, job.models.size(), 1.0, "--density");
    PIPEPRUNE_CHECK(cli.density.empty() || uses_density(job.settings.method), ConfigError,
                    "--density: --method " << cli.method << " keeps every entry; densities are for ties, dare_ties, dare_linear");
    for (size_t i = 0; i < job.models.size(); ++i) job.models[i].params = ModelParams{weights[i], densities[i]};
    job.settings.lambda = cli.lambda;
    job.settings.seed = cli.seed;
    if (!cli.normalize.empty()) job.settings.normalize = parse_flag_value(cli.normalize, "--normalize");
    if (!cli.rescale.empty()) {
      PIPEPRUNE_CHECK(uses_density(job.settings.method), ConfigError,
                      "--rescale: --method " << cli.method << " drops nothing to rescale (ties, dare_ties, dare_linear do)");
      job.settings.rescale = parse_rescale(cli.rescale);
    }
    if (!cli.consensus.empty()) {
      PIPEPRUNE_CHECK(uses_consensus(job.settings.method), ConfigError,
                      "--consensus: --method " << cli.method << " elects no sign (ties and dare_ties do)");
      job.settings.consensus = parse_consensus(cli.consensus);
    }
  }
  job.out_dtype = parse_out_dtype(cli.out_dtype);
  job.output = cli.output;
  job.overwrite = cli.overwrite;
  if (!cli.max_shard_size.empty()) {
    job.max_shard_bytes = parse_bytes(cli.max_shard_size, "--max-shard-size");
    PIPEPRUNE_CHECK(*job.max_shard_bytes > 0, ConfigError, "--max-shard-size must be positive");
  }
  job.report = cli.report;
  return job;
}

int run(const MergeCli& cli) {
  // The options first: a bad flag is an error before MPI or a device starts.
  MergeJobOptions job = job_options(cli);
  RunEnvironment env = make_environment(cli.common);
  job.device = env.device;
  job.budget_bytes = env.device.is_cpu() ? env.budget_bytes : env.host_budget_bytes;
  job.inject_out_of_memory = merge_out_of_memory_from_environment();
  const MergeJobResult result = run_merge_job(*env.transport, job);
  log::info("merge: {} tensors ({}) in {}{}", result.tensors, format_bytes(result.bytes_written),
            format_duration(result.seconds),
            result.cpu_retries > 0 ? fmt::format(", {} on the CPU after a device out-of-memory", result.cpu_retries) : "");
  return 0;
}

}  // namespace

CommandRunner add_merge_command(CLI::App& app) {
  auto cli = std::make_shared<MergeCli>();
  CLI::App* command = app.add_subcommand("merge", "merge fine-tuned models of one base (mergekit's methods, LoRA folding)");
  command->add_option("--method", cli->method, "linear, task_arithmetic, ties, dare_ties, dare_linear, or lora")->required();
  command->add_option("--base", cli->base, "the base model (task-vector methods; for linear only the config donor)");
  command->add_option("--models", cli->models, "models to merge, comma-separated; MODEL+ADAPTER folds a LoRA adapter first");
  command->add_option("--weights", cli->weights, "weight of each model (one for all, or one per model; default 1)");
  command->add_option("--density", cli->density, "fraction of each task vector kept (ties, dare_*; one or one per model)");
  command->add_option("--lambda", cli->lambda, "scale of the merged task vector")->capture_default_str();
  command->add_option("--normalize", cli->normalize, "1: divide by the weights' sum (default: the method's, as mergekit)");
  command->add_option("--rescale", cli->rescale, "after DARE's drop: l1 (mergekit >= 0.1), inv_density (the paper), none");
  command->add_option("--consensus", cli->consensus, "sign election of ties/dare_ties: sum (mergekit) or count");
  command->add_option("--seed", cli->seed, "seed of DARE's random drop (same seed, same result on any world size)")
      ->capture_default_str();
  command->add_option("--out-dtype", cli->out_dtype, "float32, float16 or bfloat16 (default: the base's)");
  command->add_option("--lora", cli->lora, "--method lora: the PEFT adapter folder to fold in");
  command->add_option("--lora-base", cli->lora_base, "--method lora: the model the adapter was trained on");
  command->add_option("--output", cli->output, "folder to write")->required();
  command->add_flag("--overwrite", cli->overwrite, "replace the output folder if it exists");
  command->add_option("--max-shard-size", cli->max_shard_size, "largest safetensors shard (default 5GB)");
  command->add_option("--report", cli->report, "write a JSON report (per-tensor kept fraction, sign agreement)");
  command->add_option("--config", "read options from a TOML file (keys are the long option names, [[models]] tables give "
                                  "model, weight, density; the command line wins)");
  add_common_options(*command, cli->common);
  return [cli] { return run(*cli); };
}

}  // namespace pipeprune
