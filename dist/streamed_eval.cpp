#include "dist/streamed_eval.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "core/common/progress.h"
#include "core/model/decoder.h"

namespace pipeprune {
namespace {

// One layer over every window: loaded on each attempt, so a CPU retry starts from the checkpoint.
class EvalLayerStep final : public LayerStep {
 public:
  explicit EvalLayerStep(const StageContext& context)
      : context_(context), progress_("eval (streamed) layer", context.stage.n_layers(), 2.0, /*every_rank=*/true) {}

  void run(LayerRun& run, const ActivationStore* inputs, ActivationStore* outputs) override {
    run.begin(LayerPass::kEval);
    const DecoderLayerWeights weights = to_compute(load_decoder_layer(context_.checkpoint, context_.config, run.layer()),
                                                   run.device(), context_.compute_dtype);
    for (int64_t w = 0; w < inputs->size(); ++w) {
      outputs->put(w, decoder_layer_forward(weights, context_.config, run.rope(), inputs->get(w).to(run.device())));
    }
  }

  void commit(int64_t layer) override { progress_.update(layer - context_.stage.first_layer + 1); }

 private:
  const StageContext& context_;
  Progress progress_;
};

}  // namespace

void evaluate_streamed(StageRunner& runner, const at::Tensor& windows, const MemoryPlan& memory,
                       const std::filesystem::path& spill_dir, const WindowLogits& on_window) {
  c10::InferenceMode inference_guard;
  const StageContext& context = runner.context();
  LayerWalk walk;
  walk.tag = kTagEvaluation;
  walk.windows = windows;
  walk.make_store = [&](int64_t n, const std::string& name) {
    return make_planned_store(memory, n, spill_dir, context.rank(), "eval-" + name);
  };
  walk.keep_final_outputs = true;
  EvalLayerStep step(context);
  const std::unique_ptr<ActivationStore> final_outputs = runner.run_layers(walk, step);
  if (!context.is_last()) return;
  const HeadWeights head = to_compute(load_head(context.checkpoint, context.config), context.device, context.compute_dtype);
  for (int64_t w = 0; w < final_outputs->size(); ++w) {
    on_window(head_forward(head, context.config, final_outputs->get(w).to(context.device)), windows.slice(0, w, w + 1));
  }
}

}  // namespace pipeprune
