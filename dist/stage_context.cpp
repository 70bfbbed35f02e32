#include "dist/stage_context.h"

#include "core/common/error.h"
#include "core/memory/host_memory.h"
#include "core/model/layer_weights.h"
#include "dist/budget.h"
#include "dist/model_writer.h"

namespace pipeprune {

ModelFootprint footprint_of(const SafetensorsCheckpoint& checkpoint, const ModelConfig& config) {
  ModelFootprint footprint;
  footprint.layer_bytes.assign(static_cast<size_t>(config.n_layers), 0);
  for (const std::string& name : checkpoint.names()) {
    const int64_t bytes = checkpoint.info(name).n_bytes;
    if (const auto layer = decoder_layer_of(name)) {
      PIPEPRUNE_CHECK(*layer < config.n_layers, FormatError,
                      checkpoint.dir().string() << ": tensor " << name << " is beyond num_hidden_layers "
                                                << config.n_layers << " of config.json");
      footprint.layer_bytes[static_cast<size_t>(*layer)] += bytes;
    } else if (name == "model.embed_tokens.weight") {
      footprint.embedding_bytes += bytes;
    } else {
      footprint.head_bytes += bytes;
    }
  }
  // A tied lm_head is the embedding: the last rank holds a copy of it.
  if (config.tie_word_embeddings) footprint.head_bytes += footprint.embedding_bytes;
  return footprint;
}

StageContext open_stage(Transport& transport, const StageOptions& options) {
  StageContext context;
  context.transport = &transport;
  context.model_dir = options.model_dir;
  context.config = ModelConfig::from_file(options.model_dir / "config.json");
  context.checkpoint = SafetensorsCheckpoint::open(options.model_dir);
  context.device = options.device;
  context.compute_dtype = options.compute_dtype;

  RankResources mine;
  mine.host = host_name();
  mine.device = options.device.str();
  const std::vector<std::string> hosts = transport.all_gather_string(mine.host);
  mine.budget_bytes = options.budget_bytes ? *options.budget_bytes
                                           : default_budget_bytes(options.device, ranks_on_host(hosts, transport.rank()));
  std::vector<RankResources> ranks(hosts.size());
  const std::vector<double> budgets = transport.all_gather_double(static_cast<double>(mine.budget_bytes));
  const std::vector<std::string> devices = transport.all_gather_string(mine.device);
  for (size_t r = 0; r < ranks.size(); ++r) {
    ranks[r].host = hosts[r];
    ranks[r].device = devices[r];
    ranks[r].budget_bytes = static_cast<int64_t>(budgets[r]);
  }
  context.plan = plan_stages(footprint_of(context.checkpoint, context.config), ranks);
  context.stage = context.plan.stages[static_cast<size_t>(transport.rank())];
  return context;
}

}  // namespace pipeprune
