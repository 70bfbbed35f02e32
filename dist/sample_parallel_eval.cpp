#include "dist/sample_parallel_eval.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "core/common/progress.h"
#include "core/data/perplexity.h"
#include "core/model/decoder.h"
#include "dist/layer_broadcast.h"

namespace pipeprune {
namespace {

// One model layer over this rank's windows: the owner reads it, every rank gets it.
class SampleEvalStep final : public LayerStep {
 public:
  SampleEvalStep(const StageContext& context, bool read_everywhere)
      : context_(context), read_everywhere_(read_everywhere), progress_("eval (samples) layer", context.config.n_layers, 2.0) {}

  void run(LayerRun& run, const ActivationStore* inputs, ActivationStore* outputs) override {
    run.begin(LayerPass::kLoad);
    const DecoderLayerWeights weights =
        to_compute(layer_on_every_rank(context_, run.layer(), read_everywhere_), run.device(), context_.compute_dtype);
    run.begin(LayerPass::kEval);
    for (int64_t w = 0; w < inputs->size(); ++w) {
      outputs->put(w, decoder_layer_forward(weights, context_.config, run.rope(), inputs->get(w).to(run.device())));
    }
  }
  void commit(int64_t layer) override { progress_.update(layer + 1); }

 private:
  const StageContext& context_;
  bool read_everywhere_;
  Progress progress_;
};

}  // namespace

WindowSums evaluate_on_samples(StageRunner& runner, const at::Tensor& windows, const MemoryPlan& memory,
                               const std::filesystem::path& spill_dir, bool read_everywhere) {
  c10::InferenceMode inference_guard;
  const StageContext& context = runner.context();
  Transport& transport = *context.transport;
  const SampleSplit split(windows.size(0), /*block_size=*/1, context.world_size());
  LayerWalk walk;
  walk.tag = kTagEvaluation;
  walk.windows = windows;
  walk.make_store = [&](int64_t n, const std::string& name) {
    return make_planned_store(memory, n, spill_dir, context.rank(), "eval-" + name);
  };
  walk.keep_final_outputs = true;
  SampleEvalStep step(context, read_everywhere);
  const std::unique_ptr<ActivationStore> final_outputs = runner.run_layers_on_samples(walk, split, step);
  // The head, then each of this rank's windows' NLL sum.
  const HeadWeights head = to_compute(head_on_every_rank(context, read_everywhere), context.device, context.compute_dtype);
  const std::vector<int64_t> mine = split.samples_of(context.rank());
  at::Tensor sums = at::zeros({static_cast<int64_t>(mine.size()), 2}, at::kDouble);
  for (size_t i = 0; i < mine.size(); ++i) {
    PerplexityAccumulator window;
    const at::Tensor logits = head_forward(head, context.config, final_outputs->get(static_cast<int64_t>(i)).to(context.device));
    window.add(logits, windows.slice(0, mine[i], mine[i] + 1));
    sums[static_cast<int64_t>(i)][0] = window.total_nll();
    sums[static_cast<int64_t>(i)][1] = static_cast<double>(window.predictions());
  }
  // Added in window order, as the pipeline's accumulator adds them.
  const std::vector<at::Tensor> gathered = transport.all_gather(sums);
  WindowSums result;
  for (int64_t w = 0; w < split.n_samples(); ++w) {
    const at::Tensor row = gathered[split.rank_of(w)].to(at::kCPU)[split.local_index(w)];
    result.total_nll += row[0].item<double>();
    result.predictions += static_cast<int64_t>(row[1].item<double>());
  }
  return result;
}

}  // namespace pipeprune
