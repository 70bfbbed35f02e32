// `pipeprune generate`: continue a prompt, printing the text as it comes.
#include <cstdio>
#include <memory>

#include "dist/generate_job.h"
#include "launch/commands.h"
#include "launch/common_options.h"
#include "launch/test_hooks.h"

namespace pipeprune {
namespace {

struct GenerateCli {
  CommonOptions common;
  std::string model;
  std::string prompt;
  int64_t max_new_tokens = 64;
  double temperature = 0.0;
  double top_p = 1.0;
  uint64_t seed = 0;
};

int run(const GenerateCli& cli) {
  RunEnvironment env = make_environment(cli.common);
  GenerateJobOptions job;
  job.model_dir = cli.model;
  job.prompt = cli.prompt;
  job.max_new_tokens = cli.max_new_tokens;
  job.temperature = cli.temperature;
  job.top_p = cli.top_p;
  job.seed = cli.seed;
  job.device = env.device;
  job.compute_dtype = env.compute_dtype;
  job.budget_bytes = env.budget_bytes;
  job.faults = fault_injector_from_environment();
  const bool printer = env.transport->rank() == 0;
  if (printer) {
    std::fputs(cli.prompt.c_str(), stdout);
    std::fflush(stdout);
  }
  job.on_text = [](const std::string& piece) {
    // fwrite, not fputs: generated text may hold NUL bytes (a <0x00> byte piece).
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
  };
  run_generate_job(*env.transport, job);
  if (printer) std::fputs("\n", stdout);
  return 0;
}

}  // namespace

CommandRunner add_generate_command(CLI::App& app) {
  auto cli = std::make_shared<GenerateCli>();
  CLI::App* command = app.add_subcommand("generate", "generate text with a KV cache");
  command->add_option("--config", "read options from a TOML file (keys are the long option names; the command line wins)");
  command->add_option("--model", cli->model, "Hugging Face checkpoint folder")->required();
  command->add_option("--prompt", cli->prompt, "text to continue (may be empty: starts from BOS)");
  command->add_option("--max-new-tokens", cli->max_new_tokens, "tokens to generate")->capture_default_str();
  command->add_option("--temperature", cli->temperature, "0: greedy")->capture_default_str();
  command->add_option("--top-p", cli->top_p, "nucleus sampling mass")->capture_default_str();
  command->add_option("--seed", cli->seed, "sampling seed")->capture_default_str();
  add_common_options(*command, cli->common);
  return [cli] { return run(*cli); };
}

}  // namespace pipeprune
