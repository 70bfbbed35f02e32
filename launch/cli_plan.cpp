// `pipeprune plan`: where every layer goes, from headers only (no weights are read).
#include <cstdio>
#include <memory>

#include "dist/stage_context.h"
#include "launch/commands.h"
#include "launch/common_options.h"

namespace pipeprune {
namespace {

struct PlanCli {
  CommonOptions common;
  std::string model;
};

int run(const PlanCli& cli) {
  RunEnvironment env = make_environment(cli.common);
  const StageContext context =
      open_stage(*env.transport, StageOptions{cli.model, env.device, env.compute_dtype, env.budget_bytes});
  if (env.transport->rank() == 0) {
    std::printf("%s", format_stage_plan(context.plan).c_str());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

CommandRunner add_plan_command(CLI::App& app) {
  auto cli = std::make_shared<PlanCli>();
  CLI::App* command = app.add_subcommand("plan", "print which rank holds which layers, without loading weights");
  command->add_option("--model", cli->model, "Hugging Face checkpoint folder")->required();
  add_common_options(*command, cli->common);
  return [cli] { return run(*cli); };
}

}  // namespace pipeprune
