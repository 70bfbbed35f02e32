#include "dist/stage_model.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

namespace pipeprune {

StageModel::StageModel(const StageContext& context, int64_t max_positions, FaultInjector& faults)
    : context_(context), runner_(context, max_positions, faults) {
  c10::InferenceMode inference_guard;
  const ModelConfig& config = context.config;
  for (int64_t l = context.stage.first_layer; l < context.stage.end_layer; ++l) {
    layers_.push_back(to_compute(load_decoder_layer(context.checkpoint, config, l), context.device,
                                 context.compute_dtype));
  }
  if (context.is_last()) {
    head_ = to_compute(load_head(context.checkpoint, config), context.device, context.compute_dtype);
  }
}

std::vector<LayerKVCache> StageModel::make_caches() const { return std::vector<LayerKVCache>(layers_.size()); }

at::Tensor StageModel::pipeline_forward(const at::Tensor& tokens, int tag, std::vector<LayerKVCache>* caches) {
  c10::InferenceMode inference_guard;
  const int64_t position_offset = (caches && !caches->empty()) ? (*caches)[0].length : 0;
  const RetryPolicy retry = caches != nullptr ? RetryPolicy::kFail : RetryPolicy::kRetryOnCpu;
  const at::Tensor hidden = runner_.run_sample(
      tokens, tag, LayerPass::kEval, retry, [&](LayerRun& run, size_t i, const at::Tensor& input) {
        if (run.device() == context_.device) {
          return decoder_layer_forward(layers_[i], context_.config, run.rope(), input, position_offset,
                                       caches ? &(*caches)[i] : nullptr);
        }
        // A retry on the CPU: a CPU copy of this layer for this call only.
        const DecoderLayerWeights on_cpu = to_compute(layers_[i], run.device(), context_.compute_dtype);
        return decoder_layer_forward(on_cpu, context_.config, run.rope(), input, position_offset, nullptr);
      });
  if (!context_.is_last()) return at::Tensor();
  return head_forward(head_, context_.config, hidden);
}

}  // namespace pipeprune
