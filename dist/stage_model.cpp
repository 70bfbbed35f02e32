#include "dist/stage_model.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "core/common/error.h"
#include "core/common/log.h"
#include "dist/device_fallback.h"

namespace pipeprune {

StageModel::StageModel(const StageContext& context, int64_t max_positions) : context_(context) {
  c10::InferenceMode inference_guard;
  const ModelConfig& config = context.config;
  rope_ = make_rope_tables(config, max_positions, context.device);
  if (context.is_first()) {
    // Kept in the stored dtype: rows are upcast after the lookup (same values, less memory).
    embedding_ = load_embedding(context.checkpoint, config);
  }
  for (int64_t l = context.stage.first_layer; l < context.stage.end_layer; ++l) {
    layers_.push_back(to_compute(load_decoder_layer(context.checkpoint, config, l), context.device,
                                 context.compute_dtype));
  }
  if (context.is_last()) {
    head_ = to_compute(load_head(context.checkpoint, config), context.device, context.compute_dtype);
  }
}

std::vector<LayerKVCache> StageModel::make_caches() const { return std::vector<LayerKVCache>(layers_.size()); }

at::Tensor StageModel::run_layer(size_t i, const at::Tensor& hidden, int64_t position_offset, LayerKVCache* cache) {
  const DecoderLayerWeights& weights = layers_[i];
  try {
    maybe_inject_oom(weights.layer, "eval");
    return decoder_layer_forward(weights, context_.config, rope_, hidden, position_offset, cache);
  } catch (...) {
    // A KV cache lives on the device; generation does not fall back.
    if (cache != nullptr || !is_out_of_memory(std::current_exception())) throw;
  }
  log::warn("layer {}/{}: the eval pass ran out of memory on {}; retrying the layer on cpu", weights.layer + 1,
            context_.config.n_layers, context_.device.str());
  release_device_caches();
  const c10::Device cpu(c10::kCPU);
  const DecoderLayerWeights on_cpu = context_.device.is_cpu() ? weights : to_compute(weights, cpu, context_.compute_dtype);
  const RopeTables cpu_rope = context_.device.is_cpu() ? rope_ : make_rope_tables(context_.config, rope_.n_positions(), cpu);
  return decoder_layer_forward(on_cpu, context_.config, cpu_rope, hidden.to(cpu), position_offset, nullptr)
      .to(context_.device);
}

at::Tensor StageModel::pipeline_forward(const at::Tensor& tokens, int tag, std::vector<LayerKVCache>* caches) {
  c10::InferenceMode inference_guard;
  Transport& transport = *context_.transport;
  const int64_t position_offset = (caches && !caches->empty()) ? (*caches)[0].length : 0;
  at::Tensor hidden;
  if (context_.is_first()) {
    hidden = embed_tokens(embedding_, tokens).to(context_.device, context_.compute_dtype);
  } else {
    RecvOptions options;
    options.tag = tag;
    options.expect.dtype = context_.compute_dtype;
    options.expect.shape = std::vector<int64_t>{tokens.size(0), tokens.size(1), context_.config.hidden_size};
    options.device = context_.device;
    hidden = transport.recv(context_.previous_rank(), options);
  }
  for (size_t i = 0; i < layers_.size(); ++i) {
    LayerKVCache* cache = caches ? &(*caches)[i] : nullptr;
    hidden = run_layer(i, hidden, position_offset, cache);
  }
  if (!context_.is_last()) {
    transport.send(hidden, context_.next_rank(), SendOptions{tag});
    return at::Tensor();
  }
  return head_forward(head_, context_.config, hidden);
}

}  // namespace pipeprune
