#include "dist/outlier_pass.h"

#include <ATen/ATen.h>

#include <chrono>
#include <map>

#include <nlohmann/json.hpp>

#include "core/common/error.h"
#include "core/common/log.h"
#include "core/common/progress.h"
#include "dist/layer_broadcast.h"
#include "dist/prune_steps.h"

namespace pipeprune {
namespace {

using Clock = std::chrono::steady_clock;

// What the pass computes a layer with: Wanda's statistic of every linear in one group (the
// original's LOD uses the Wanda metric whatever the method), nothing pruned.
LayerPruneOptions outlier_options(c10::Device device, c10::ScalarType compute_dtype, StatisticMode statistics) {
  LayerPruneOptions options;
  options.prune.method = PruneMethod::kWanda;
  options.device = device;
  options.compute_dtype = compute_dtype;
  options.statistics = statistics;
  return options;
}

// Pipeline: one of this rank's layers over every sample, its dense outputs handed on.
class OutlierStep final : public LayerStep {
 public:
  OutlierStep(const StageContext& context, const OutlierPassOptions& options, std::map<int64_t, double>& percent)
      : context_(context),
        options_(options),
        percent_(percent),
        progress_("OWL outlier pass, stage layer", context.stage.n_layers(), 0.0, /*every_rank=*/true) {}

  void run(LayerRun& run, const ActivationStore* inputs, ActivationStore* outputs) override {
    PIPEPRUNE_CHECK(inputs != nullptr, Error, "OWL outlier pass: layer " << run.layer() << " has no inputs");
    run.begin(LayerPass::kLoad);
    stored_ = load_decoder_layer(context_.checkpoint, context_.config, run.layer());
    LayerPruner pruner(stored_, context_.config, run.rope(),
                       outlier_options(run.device(), context_.compute_dtype, StatisticMode::kRunningMean));
    run.begin(LayerPass::kStats);
    const std::string where = fmt::format("OWL layer {}/{}", run.layer() + 1, context_.config.n_layers);
    Progress samples(where + " outlier pass, sample", inputs->size(), 10.0, /*every_rank=*/true);
    for (int64_t s = 0; s < inputs->size(); ++s) {
      const at::Tensor input = inputs->get(s).to(run.device());
      // The dense output is the next layer's input (the original runs the same dense layer again).
      if (outputs != nullptr) {
        outputs->put(s, pruner.forward_and_collect(input));
      } else {
        pruner.collect(input);
      }
      if (s + 1 < inputs->size()) samples.update(s + 1);
    }
    layer_percent_ = pruner.outlier_percent(options_.owl_m);
  }

  void commit(int64_t layer) override {
    percent_[layer] = layer_percent_;
    stored_ = DecoderLayerWeights();
    progress_.update(static_cast<int64_t>(percent_.size()),
                     fmt::format("model layer {}/{} outliers {:.4f}%", layer + 1, context_.config.n_layers,
                                 layer_percent_));
  }

 private:
  const StageContext& context_;
  const OutlierPassOptions& options_;
  std::map<int64_t, double>& percent_;
  Progress progress_;
  DecoderLayerWeights stored_;
  double layer_percent_ = 0;
};

// Samples: every layer of the model on every rank over its own samples; statistics to the owner.
class OutlierSamplesStep final : public LayerStep {
 public:
  OutlierSamplesStep(const StageContext& context, const OutlierPassOptions& options, std::map<int64_t, double>& percent)
      : context_(context),
        options_(options),
        percent_(percent),
        progress_("OWL outlier pass, model layer (all ranks)", context.config.n_layers, 0.0) {}

  void run(LayerRun& run, const ActivationStore* inputs, ActivationStore* outputs) override {
    PIPEPRUNE_CHECK(inputs != nullptr, Error, "OWL outlier pass: layer " << run.layer() << " has no inputs");
    const int owner = context_.plan.owner_of_layer(run.layer());
    run.begin(LayerPass::kLoad);
    stored_ = layer_on_every_rank(context_, run.layer(), options_.read_everywhere);
    LayerPruner pruner(stored_, context_.config, run.rope(),
                       outlier_options(run.device(), context_.compute_dtype, StatisticMode::kBlockSums));
    run.begin(LayerPass::kStats);
    const std::vector<LinearKind> kinds = pruner.statistic_linears();
    // Wanda's statistics are cols floats per input: all of them go to the owner, which alone
    // needs them (D_l mixes every linear of the layer).
    reduce_block_statistics(*context_.transport, context_.rank(), *options_.split, pruner, *inputs, kinds,
                            std::vector<int>(kinds.size(), owner), run.device());
    if (context_.rank() == owner) layer_percent_ = pruner.outlier_percent(options_.owl_m);
    if (outputs != nullptr) {
      run.begin(LayerPass::kOutput);
      output_pass(pruner, fmt::format("OWL layer {}/{}", run.layer() + 1, context_.config.n_layers), *inputs,
                  *outputs, run.device());
    }
  }

  void commit(int64_t layer) override {
    if (context_.rank() == context_.plan.owner_of_layer(layer)) percent_[layer] = layer_percent_;
    stored_ = DecoderLayerWeights();
    if (context_.is_first()) progress_.update(layer + 1);
  }

 private:
  const StageContext& context_;
  const OutlierPassOptions& options_;
  std::map<int64_t, double>& percent_;
  Progress progress_;
  DecoderLayerWeights stored_;
  double layer_percent_ = 0;
};

// Every rank's densities, on every rank, by model layer.
std::vector<double> gather_percent(const StageContext& context, const std::map<int64_t, double>& mine) {
  nlohmann::json local = nlohmann::json::array();
  for (const auto& [layer, percent] : mine) local.push_back({layer, percent});
  std::vector<double> all(static_cast<size_t>(context.config.n_layers), -1);
  for (const std::string& text : context.transport->all_gather_string(local.dump())) {
    for (const auto& entry : nlohmann::json::parse(text)) all.at(entry[0].get<size_t>()) = entry[1].get<double>();
  }
  for (size_t l = 0; l < all.size(); ++l) {
    PIPEPRUNE_CHECK(all[l] >= 0, Error, "OWL outlier pass: no density for layer " << l);
  }
  return all;
}

}  // namespace

OutlierPassResult run_outlier_pass(StageRunner& runner, const at::Tensor& windows, const MemoryPlan& memory,
                                   const std::filesystem::path& spill_dir, const OutlierPassOptions& options) {
  const auto start = Clock::now();
  const StageContext& context = runner.context();
  log::info("OWL: outlier pass over the dense model (M {}), before pruning", options.owl_m);
  std::map<int64_t, double> mine;
  LayerWalk walk;
  walk.tag = kTagOutliers;
  walk.windows = windows;
  walk.make_store = [&](int64_t n, const std::string& name) {
    return make_planned_store(memory, n, spill_dir, context.rank(), "owl-" + name);
  };
  if (options.split != nullptr) {
    OutlierSamplesStep step(context, options, mine);
    runner.run_layers_on_samples(walk, *options.split, step);
  } else {
    OutlierStep step(context, options, mine);
    runner.run_layers(walk, step);
  }
  OutlierPassResult result;
  result.outlier_percent = gather_percent(context, mine);
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

}  // namespace pipeprune
