#include "dist/prune_report.h"

#include "dist/sample_split.h"

#include "core/common/files.h"
#include "core/memory/host_memory.h"
#include "core/model/layer_weights.h"
#include "dist/prune_job.h"

namespace pipeprune {

nlohmann::json layer_result_json(const LayerPruneResult& result, const ModelConfig& config, int rank) {
  nlohmann::json linears = nlohmann::json::object();
  for (LinearKind kind : layer_linears(config)) {
    const LinearPruneResult& linear = result.linears[static_cast<int>(kind)];
    linears[linear_short_name(config, kind)] = {
        {"numel", linear.numel},
        {"zeros", linear.zeros},
        {"sparsity", linear.numel ? static_cast<double>(linear.zeros) / static_cast<double>(linear.numel) : 0.0},
        {"seconds_mask", linear.seconds_mask}};
  }
  return {{"layer", result.layer},
          {"rank", rank},
          {"seconds_stats", result.seconds_stats},
          {"seconds_prune", result.seconds_prune},
          {"seconds_output", result.seconds_output},
          {"seconds_reduce", result.seconds_reduce},
          {"bytes_statistics", result.bytes_statistics},
          {"linears", linears}};
}

double PruneReport::overall_sparsity() const {
  double zeros = 0;
  double numel = 0;
  for (const auto& layer : layers) {
    for (const auto& [name, linear] : layer["linears"].items()) {
      zeros += linear["zeros"].get<double>();
      numel += linear["numel"].get<double>();
    }
  }
  return numel > 0 ? zeros / numel : 0.0;
}

nlohmann::json PruneReport::to_json() const {
  nlohmann::json out = settings;
  out["layers"] = layers;
  out["overall_sparsity"] = overall_sparsity();
  out["perplexity"] = {{"dense", perplexity_dense ? nlohmann::json(*perplexity_dense) : nlohmann::json()},
                       {"pruned", perplexity_pruned ? nlohmann::json(*perplexity_pruned) : nlohmann::json()}};
  out["ranks"] = ranks;
  out["seconds_total"] = seconds_total;
  if (!sparsity_profile.is_null()) out["sparsity_profile"] = sparsity_profile;
  if (memory_log) out["memory_log"] = memory_log->string();
  return out;
}

PruneReport gather_prune_report(const StageContext& context, const PruneJobOptions& options,
                                const at::Tensor& windows, const std::vector<LayerPruneResult>& layers,
                                const MemoryPlan& memory) {
  PruneReport report;
  const PruneOptions& prune = options.layer.prune;
  report.settings = {
      {"model", options.model_dir.string()},
      {"output", options.output.string()},
      {"method", prune_method_name(prune.method)},
      {"pattern", prune.pattern.to_string()},
      {"sparsity", prune.pattern.sparsity},
      {"use_variant", prune.use_variant},
      {"true_sequential", options.layer.true_sequential},
      {"calibration", options.calibration_mode == CalibrationMode::kDense ? "dense" : "sequential"},
      {"parallel", parallel_mode_name(options.parallel)},
      {"sample_block", windows.defined() ? resolve_sample_block(options.sample_block, windows.size(0)) : 0},
      {"blocksize", prune.blocksize},
      {"percdamp", prune.percdamp},
      {"hinv_factor", hinv_factor_name(prune.hinv_factor)},
      {"nsamples", windows.defined() ? windows.size(0) : 0},
      {"seqlen", windows.defined() ? windows.size(1) : 0},
      {"seed", options.calibration.seed},
      {"world_size", context.world_size()},
      {"device", context.device.str()}};
  nlohmann::json mine = nlohmann::json::array();
  for (const auto& layer : layers) mine.push_back(layer_result_json(layer, context.config, context.rank()));
  nlohmann::json rank_memory = {{"rank", context.rank()},
                                 {"host", context.stage.host},
                                 {"device", context.stage.device},
                                 {"layers", {context.stage.first_layer, context.stage.end_layer}},
                                 {"bytes_weights", context.stage.bytes_weights},
                                 {"budget_bytes", memory.budget_bytes},
                                 {"estimated_peak_bytes", memory.estimate.total()},
                                 {"estimate",
                                  {{"baseline", memory.estimate.baseline},
                                   {"weights", memory.estimate.weights},
                                   {"activations", memory.estimate.activations},
                                   {"activations_spilled", memory.estimate.activations_spilled},
                                   {"statistics", memory.estimate.statistics},
                                   {"scratch", memory.estimate.scratch},
                                   {"peak_phase", memory.estimate.peak_phase}}},
                                 {"peak_rss_bytes", process_peak_rss_bytes()}};
  if (memory.gpu) {
    // The figures above are the device's; what the rank holds in host RAM besides.
    rank_memory["activations_on"] = memory.activations_on_host ? "host" : "device";
    rank_memory["host_budget_bytes"] = memory.host_budget_bytes;
    rank_memory["estimated_host_peak_bytes"] = memory.host_estimate.total();
    rank_memory["host_estimate"] = {{"process", memory.host_estimate.baseline},
                                    {"weights", memory.host_estimate.weights},
                                    {"activations", memory.host_estimate.activations},
                                    {"activations_spilled", memory.host_estimate.activations_spilled},
                                    {"staging", memory.host_estimate.scratch},
                                    {"peak_phase", memory.host_estimate.peak_phase}};
  }
  const auto all_layers = context.transport->all_gather_string(mine.dump());
  const auto all_memory = context.transport->all_gather_string(rank_memory.dump());
  for (const auto& text : all_layers) {
    for (const auto& layer : nlohmann::json::parse(text)) report.layers.push_back(layer);
  }
  for (const auto& text : all_memory) report.ranks.push_back(nlohmann::json::parse(text));
  return report;
}

void write_prune_report(const StageContext& context, const PruneReport& report, const std::filesystem::path& path) {
  if (!context.is_first()) return;
  write_file_atomic(path, report.to_json().dump(2) + "\n");
}

}  // namespace pipeprune
