// `pipeprune eval`: perplexity of a model over a text file.
#include <cstdio>
#include <memory>

#include "core/common/log.h"
#include "dist/eval_job.h"
#include "launch/commands.h"
#include "launch/common_options.h"
#include "launch/test_hooks.h"

namespace pipeprune {
namespace {

struct EvalCli {
  CommonOptions common;
  std::string model;
  std::string data;
  int64_t seqlen = 2048;
  int64_t max_chunks = 0;
  std::string spill_dir;
  std::string save_logits;
  std::string save_windows;
  std::string parallel = "pipeline";
  std::string layer_source = "auto";
};

int run(const EvalCli& cli) {
  RunEnvironment env = make_environment(cli.common);
  EvalJobOptions job;
  job.model_dir = cli.model;
  job.data = cli.data;
  job.seqlen = cli.seqlen;
  job.max_chunks = cli.max_chunks;
  job.device = env.device;
  job.compute_dtype = env.compute_dtype;
  job.budget_bytes = env.budget_bytes;
  job.spill_dir = cli.spill_dir;
  job.save_logits = cli.save_logits;
  job.save_windows = cli.save_windows;
  job.parallel = parse_parallel_mode(cli.parallel);
  job.layer_source = parse_layer_source(cli.layer_source);
  job.faults = fault_injector_from_environment();
  const EvalResult result = run_eval_job(*env.transport, job);
  if (env.transport->rank() == 0) {
    // The total NLL in full precision, so runs can be compared exactly (world sizes, placements).
    std::printf("perplexity %.6f (%lld windows of %lld tokens, %lld predictions, total nll %.17g, %.1fs)\n",
                result.perplexity, static_cast<long long>(result.windows), static_cast<long long>(result.seqlen),
                static_cast<long long>(result.predictions), result.total_nll, result.seconds);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

CommandRunner add_eval_command(CLI::App& app) {
  auto cli = std::make_shared<EvalCli>();
  CLI::App* command = app.add_subcommand("eval", "perplexity over a text file (Wanda/SparseGPT recipe)");
  command->add_option("--config", "read options from a TOML file (keys are the long option names; the command line wins)");
  command->add_option("--model", cli->model, "Hugging Face checkpoint folder")->required();
  command->add_option("--data", cli->data, "UTF-8 text file (or JSON lines with a \"text\" field)")->required();
  command->add_option("--seqlen", cli->seqlen, "tokens per window (clamped to the model's context)")->capture_default_str();
  command->add_option("--max-chunks", cli->max_chunks, "evaluate at most N windows (0: all)")->capture_default_str();
  command->add_option("--parallel", cli->parallel,
                      "pipeline (ranks own layers, windows go rank to rank) or samples (windows split across the ranks)")
      ->capture_default_str();
  command->add_option("--layer-source", cli->layer_source,
                      "--parallel samples: auto, owner (broadcast each layer) or checkpoint (every rank reads it)")
      ->capture_default_str();
  command->add_option("--spill-dir", cli->spill_dir, "where hidden states beyond the memory budget spill (default: temp dir)");
  command->add_option("--save-windows", cli->save_windows, "write the token windows [n, seqlen] as int64 .npy");
  command->add_option("--save-logits", cli->save_logits,
                      "write every window's logits [n, seqlen, vocab] as float32 .npy (held in RAM: keep --max-chunks small)");
  add_common_options(*command, cli->common);
  return [cli] { return run(*cli); };
}

}  // namespace pipeprune
