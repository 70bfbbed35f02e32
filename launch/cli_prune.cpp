// `pipeprune prune`: options, Wanda-compatible aliases, TOML config, and the call into the job.
#include <algorithm>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "core/common/error.h"
#include "core/common/files.h"
#include "core/common/log.h"
#include "core/memory/host_memory.h"
#include "core/report/html_report.h"
#include "dist/prune_job.h"
#include "dist/sample_split.h"
#include "launch/commands.h"
#include "launch/common_options.h"
#include "launch/test_hooks.h"

namespace pipeprune {
namespace {

struct PruneCli {
  CommonOptions common;
  std::string model;
  std::string output;
  std::string method = "wanda";
  double sparsity = 0.5;
  std::string pattern = "unstructured";
  std::string calib_data;
  std::string calib_tokens;
  int64_t nsamples = 128;
  int64_t seqlen = 2048;
  uint64_t seed = 0;
  bool use_variant = false;
  bool true_sequential = false;
  int64_t blocksize = 128;
  double percdamp = 0.01;
  std::string hinv_factor = "reference";
  std::string sparsity_profile = "uniform";
  double owl_lambda = 0.08;
  double owl_m = 5;
  std::vector<std::string> layer_sparsity;
  CLI::Option* profile_option = nullptr;
  std::string calibration = "sequential";
  std::string parallel = "pipeline";
  int64_t sample_block = 0;
  std::string layer_source = "auto";
  std::string eval_data;
  int64_t eval_max_chunks = 0;
  bool eval_dense = false;
  std::string report;
  bool overwrite = false;
  bool resume = false;
  std::string max_shard_size;
  std::string spill_dir;
  bool log_memory = false;
  std::string memory_log_file = "memory_log.csv";
  CLI::Option* sparsity_option = nullptr;
  CLI::Option* nsamples_option = nullptr;
  CLI::Option* seqlen_option = nullptr;
};

CalibrationMode parse_calibration_mode(const std::string& name) {
  if (name == "sequential") return CalibrationMode::kSequential;
  if (name == "dense") return CalibrationMode::kDense;
  PIPEPRUNE_FAIL(ConfigError, "--calibration must be sequential or dense (got '" << name << "')");
}

// --layer-sparsity: numbers (comma-separated, or repeated as a TOML array gives them), or one
// file holding them separated by commas, spaces or lines ('#' starts a comment).
std::vector<double> parse_layer_sparsity(const std::vector<std::string>& items) {
  std::vector<std::string> words = items;
  std::string source = "--layer-sparsity";
  if (words.size() == 1 && !parse_number(words[0])) {
    const std::filesystem::path file = words[0];
    PIPEPRUNE_CHECK(std::filesystem::is_regular_file(file), ConfigError,
                    "--layer-sparsity " << file.string()
                                        << ": neither a number nor a file; give one ratio per layer, comma-separated, "
                                           "or a file of them");
    source = file.string();
    words.clear();
    std::istringstream lines(read_file(file));
    for (std::string line; std::getline(lines, line);) {
      line = line.substr(0, line.find('#'));
      std::replace(line.begin(), line.end(), ',', ' ');
      std::istringstream in(line);
      for (std::string word; in >> word;) words.push_back(word);
    }
  }
  std::vector<double> ratios;
  for (const std::string& word : words) {
    const std::optional<double> value = parse_number(word);
    PIPEPRUNE_CHECK(value.has_value(), ConfigError,
                    source << ": '" << word << "' is not a number (one sparsity ratio per decoder layer)");
    ratios.push_back(*value);
  }
  return ratios;
}

int run(const PruneCli& cli) {
  PruneJobOptions job;
  job.model_dir = cli.model;
  job.output = cli.output;
  job.overwrite = cli.overwrite;
  job.resume = cli.resume;
  job.layer.prune.method = parse_prune_method(cli.method);
  job.layer.prune.pattern = SparsityPattern::parse(cli.pattern, cli.sparsity);
  job.layer.prune.use_variant = cli.use_variant;
  job.layer.prune.blocksize = cli.blocksize;
  job.layer.prune.percdamp = cli.percdamp;
  job.layer.prune.hinv_factor = parse_hinv_factor(cli.hinv_factor);
  job.layer.true_sequential = cli.true_sequential;
  // A list alone means the user's ratios.
  const bool list_alone = !cli.layer_sparsity.empty() && cli.profile_option->count() == 0;
  job.profile.kind = parse_sparsity_profile(list_alone ? "explicit" : cli.sparsity_profile);
  job.profile.owl_lambda = cli.owl_lambda;
  job.profile.owl_m = cli.owl_m;
  if (!cli.layer_sparsity.empty()) job.profile.layer_sparsity = parse_layer_sparsity(cli.layer_sparsity);
  job.calibration_mode = parse_calibration_mode(cli.calibration);
  job.parallel = parse_parallel_mode(cli.parallel);
  job.sample_block = cli.sample_block;
  job.layer_source = parse_layer_source(cli.layer_source);
  job.calibration.calib_data = cli.calib_data;
  job.calibration.calib_tokens = cli.calib_tokens;
  job.calibration.nsamples = cli.nsamples;
  job.calibration.seqlen = cli.seqlen;
  job.calibration.seed = cli.seed;
  job.calibration.nsamples_given = cli.nsamples_option->count() > 0;
  job.calibration.seqlen_given = cli.seqlen_option->count() > 0;
  if (!cli.max_shard_size.empty()) job.max_shard_bytes = parse_bytes(cli.max_shard_size, "--max-shard-size");
  job.eval_data = cli.eval_data;
  job.eval_max_chunks = cli.eval_max_chunks;
  job.eval_dense = cli.eval_dense;
  job.report = cli.report;
  job.spill_dir = cli.spill_dir;
  job.log_memory = cli.log_memory;
  job.memory_log_csv = cli.memory_log_file;
  job.faults = fault_injector_from_environment();
  // Every bad option is one line before MPI starts or the model is read.
  job.validate();

  RunEnvironment env = make_environment(cli.common);
  if (job.layer.prune.pattern.is_nm() && cli.sparsity_option->count() > 0) {
    log::warn("--sparsity {} is ignored: --pattern {} prunes {} of every {} weights", cli.sparsity,
              job.layer.prune.pattern.to_string(), job.layer.prune.pattern.n, job.layer.prune.pattern.m);
  }
  job.layer.device = env.device;
  job.layer.compute_dtype = env.compute_dtype;
  job.budget_bytes = env.budget_bytes;
  job.host_budget_bytes = env.host_budget_bytes;
  const PruneJobResult result = run_prune_job(*env.transport, job);
  std::string page;
  if (!job.report.empty() && env.transport->rank() == 0) {
    // The page is a view of the JSON: a failure to draw it is a warning, the model is saved.
    try {
      const std::filesystem::path html = default_html_path(job.report);
      write_html_report(job.report, html);
      page = fmt::format("; the run's page: {} (pipeprune report)", html.string());
    } catch (const Error& e) {
      log::warn("the report page was not written: {}", e.what());
    }
  }
  log::info("done in {:.1f}s{}", result.seconds, page);
  return 0;
}

}  // namespace

CommandRunner add_prune_command(CLI::App& app) {
  auto cli = std::make_shared<PruneCli>();
  CLI::App* command = app.add_subcommand("prune", "prune a model and save it in Hugging Face format");
  command->add_option("--config", "read options from a TOML file (keys are the long option names; the command line wins)");
  command->add_option("--model", cli->model, "Hugging Face checkpoint folder")->required();
  command->add_option("--output,--save_model", cli->output, "folder for the pruned model (must not exist)")->required();
  command->add_option("--method,--prune_method", cli->method, "magnitude, wanda or sparsegpt")->capture_default_str();
  cli->sparsity_option = command->add_option("--sparsity,--sparsity_ratio", cli->sparsity, "fraction pruned (unstructured)")
                             ->capture_default_str();
  command->add_option("--pattern,--sparsity_type", cli->pattern, "unstructured or N:M (2:4, 4:8, ...)")
      ->capture_default_str();
  command->add_option("--calib-data", cli->calib_data, "calibration text, or JSON lines with a \"text\" field");
  command->add_option("--calib-tokens", cli->calib_tokens, "exact calibration windows, .npy int32/int64 [nsamples, seqlen]");
  cli->nsamples_option = command->add_option("--nsamples", cli->nsamples, "calibration samples")->capture_default_str();
  cli->seqlen_option = command->add_option("--seqlen", cli->seqlen, "tokens per calibration window (clamped to the model's context)")
                           ->capture_default_str();
  command->add_option("--seed", cli->seed, "seed of the calibration sampling")->capture_default_str();
  command->add_flag("--use-variant,--use_variant", cli->use_variant, "Wanda's variant: per-row alpha by bisection");
  command->add_flag("--true-sequential", cli->true_sequential, "prune [q,k,v] -> [o] -> [gate,up] -> [down] with a forward between groups");
  command->add_option("--blocksize", cli->blocksize, "SparseGPT column block size")->capture_default_str();
  command->add_option("--percdamp", cli->percdamp, "SparseGPT damping, fraction of mean(diag H)")->capture_default_str();
  command->add_option("--hinv-factor", cli->hinv_factor,
                      "SparseGPT's H^-1 factor: reference (the published LAPACK chain on one thread: the "
                      "reference's bits) or blocked (GEMM blocks on all threads, half the FLOPs: faster on the "
                      "CPU, different last bits, so ~95% of the masks agree)")
      ->capture_default_str();
  cli->profile_option =
      command->add_option("--sparsity-profile", cli->sparsity_profile,
                          "how --sparsity is spread over the layers: uniform, owl (outlier-weighted, Yin et al. 2024: "
                          "a pass over the dense model first) or explicit (--layer-sparsity)")
          ->capture_default_str();
  command->add_option("--owl-lambda", cli->owl_lambda, "OWL: the spread of the layer ratios (max - min = 2 lambda)")
      ->capture_default_str();
  command->add_option("--owl-m", cli->owl_m, "OWL: an outlier is a Wanda score above M times the layer's mean")
      ->capture_default_str();
  command->add_option("--layer-sparsity", cli->layer_sparsity,
                      "one sparsity per decoder layer, comma-separated, or a file of them (implies "
                      "--sparsity-profile explicit)")
      ->delimiter(',');
  command->add_option("--calibration", cli->calibration, "sequential (default) or dense (all ranks in parallel)")
      ->capture_default_str();
  command->add_option("--parallel", cli->parallel,
                      "pipeline (ranks own layers, activations go rank to rank) or samples (every rank runs every "
                      "layer over its share of the samples: about W times faster, the same method)")
      ->capture_default_str();
  command->add_option("--sample-block", cli->sample_block,
                      "--parallel samples: samples per reduction block (part of the result, like --nsamples); 0: nsamples / 8")
      ->capture_default_str();
  command->add_option("--layer-source", cli->layer_source,
                      "--parallel samples: how every rank gets each layer: auto (read it when all ranks share a "
                      "host, else from its owner), owner (broadcast) or checkpoint (read; a shared filesystem)")
      ->capture_default_str();
  command->add_option("--eval-data", cli->eval_data, "text to report the pruned model's perplexity on");
  command->add_option("--eval-max-chunks", cli->eval_max_chunks, "evaluate at most N windows (0: all)")->capture_default_str();
  command->add_flag("--eval-dense", cli->eval_dense, "also report the input model's perplexity (before pruning)");
  command->add_option("--report", cli->report, "write a JSON report here");
  command->add_flag("--overwrite", cli->overwrite, "replace the output folder if it exists");
  command->add_flag("--resume", cli->resume,
                    "continue a killed or failed prune of the same command from its last finished layer "
                    "(any world size; the result is the same bytes)");
  command->add_option("--max-shard-size", cli->max_shard_size, "re-shard the output (e.g. 5GB); default: shard like the input");
  command->add_option("--spill-dir", cli->spill_dir,
                      "where activations that exceed the memory budget spill to (HDF5); default: next to --output");
  command->add_flag("--log-memory", cli->log_memory, "record memory at checkpoints; print a table and write a CSV");
  command->add_option("--log-memory-file", cli->memory_log_file, "CSV of --log-memory")->capture_default_str();
  add_common_options(*command, cli->common);
  return [cli] { return run(*cli); };
}

}  // namespace pipeprune
