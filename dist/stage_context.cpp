#include "dist/stage_context.h"

#include "core/common/error.h"
#include "core/memory/host_memory.h"
#include "core/model/layer_weights.h"
#include "dist/budget.h"

namespace pipeprune {

ModelFootprint footprint_of(const ModelSpec& spec) {
  ModelFootprint footprint;
  for (int64_t l = 0; l < spec.n_layers(); ++l) footprint.layer_bytes.push_back(spec.bytes_layer(l));
  footprint.embedding_bytes = spec.bytes_embedding();
  footprint.head_bytes = spec.bytes_head();
  return footprint;
}

StageContext open_stage(Transport& transport, const StageOptions& options) {
  StageContext context;
  context.transport = &transport;
  context.model_dir = options.model_dir;
  context.spec = ModelSpec::open(options.model_dir);
  context.config = context.spec.config;
  context.checkpoint = SafetensorsCheckpoint::open(options.model_dir);
  context.baseline_bytes = runtime_baseline_bytes();
  context.device = options.device;
  context.compute_dtype = options.compute_dtype;

  RankResources mine;
  mine.host = host_name();
  mine.device = options.device.str();
  const std::vector<std::string> hosts = transport.all_gather_string(mine.host);
  const int sharing = ranks_on_host(hosts, transport.rank());
  mine.budget_bytes = options.budget_bytes ? *options.budget_bytes : default_budget_bytes(options.device, sharing);
  if (!options.device.is_cuda()) {
    context.host_budget_bytes = mine.budget_bytes;
  } else {
    context.host_budget_bytes =
        options.host_budget_bytes ? *options.host_budget_bytes : default_budget_bytes(c10::Device(c10::kCPU), sharing);
  }
  std::vector<RankResources> ranks(hosts.size());
  const std::vector<double> budgets = transport.all_gather_double(static_cast<double>(mine.budget_bytes));
  const std::vector<std::string> devices = transport.all_gather_string(mine.device);
  for (size_t r = 0; r < ranks.size(); ++r) {
    ranks[r].host = hosts[r];
    ranks[r].device = devices[r];
    ranks[r].budget_bytes = static_cast<int64_t>(budgets[r]);
  }
  context.plan = plan_stages(footprint_of(context.spec), ranks);
  context.stage = context.plan.stages[static_cast<size_t>(transport.rank())];
  return context;
}

}  // namespace pipeprune
