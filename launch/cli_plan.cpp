// `pipeprune plan`: where every layer goes, from headers only (no weights are read).
#include <algorithm>
#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "core/common/error.h"
#include "core/memory/host_memory.h"
#include "dist/memory_plan.h"
#include "dist/stage_context.h"
#include "launch/commands.h"
#include "launch/common_options.h"

namespace pipeprune {
namespace {

struct PlanCli {
  CommonOptions common;
  std::string model;
  int64_t seqlen = 2048;
};

// Where this rank's layers live when the model is evaluated or generates: all resident on the
// compute device, or loaded from the mmap'd checkpoint one layer at a time (the same decision
// plan_eval_memory makes at run time, for one window of `seqlen` tokens).
std::string eval_placement(const StageContext& context, int64_t seqlen) {
  const std::string where = context.device.is_cuda() ? "on " + context.device.str() : "in host RAM";
  try {
    const MemoryPlan plan = plan_eval_memory_of_rank(context, 1, seqlen);
    const std::string peak = fmt::format("estimated peak {} of budget {}", format_bytes(plan.estimate.total()),
                                         format_bytes(plan.budget_bytes));
    if (plan.resident) return fmt::format("layers resident {}, {}", where, peak);
    return fmt::format("layers streamed from the checkpoint one at a time {}, {}", where, peak);
  } catch (const OutOfMemoryError& e) {
    return std::string("does not fit: ") + e.what();
  }
}

int run(const PlanCli& cli) {
  RunEnvironment env = make_environment(cli.common);
  const StageContext context =
      open_stage(*env.transport,
                 StageOptions{cli.model, env.device, env.compute_dtype, env.budget_bytes, env.host_budget_bytes});
  const int64_t seqlen = std::min<int64_t>(cli.seqlen, context.config.context_positions());
  const std::vector<std::string> placements = env.transport->all_gather_string(eval_placement(context, seqlen));
  if (env.transport->rank() == 0) {
    std::printf("%s", format_stage_plan(context.plan).c_str());
    std::printf("prune: each rank loads its layers from the checkpoint one at a time (see `estimate` for the peak)\n");
    std::printf("prune --parallel samples: each rank still loads and writes its own layers, and also runs every "
                "other rank's layers (broadcast by their owners) over its share of the samples\n");
    std::printf("eval/generate at seqlen %lld:\n", static_cast<long long>(seqlen));
    for (size_t rank = 0; rank < placements.size(); ++rank) {
      std::printf("%4zu  %s\n", rank, placements[rank].c_str());
    }
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

CommandRunner add_plan_command(CLI::App& app) {
  auto cli = std::make_shared<PlanCli>();
  CLI::App* command = app.add_subcommand("plan", "print which rank holds which layers, without loading weights");
  command->add_option("--model", cli->model, "Hugging Face checkpoint folder")->required();
  command->add_option("--seqlen", cli->seqlen, "window length the eval placement is planned for (clamped to the context)");
  add_common_options(*command, cli->common);
  cli->common.planning_only = true;
  return [cli] { return run(*cli); };
}

}  // namespace pipeprune
