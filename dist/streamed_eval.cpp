#include "dist/streamed_eval.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "core/common/log.h"
#include "core/common/progress.h"
#include "core/memory/host_memory.h"
#include "core/model/decoder.h"
#include "dist/activation_exchange.h"
#include "dist/device_fallback.h"

namespace pipeprune {
namespace {

// One layer over every window, on `device`.
void layer_pass(const StageContext& context, int64_t layer, c10::Device device, const RopeTables& rope,
                const ActivationStore& inputs, ActivationStore& outputs) {
  maybe_inject_oom(layer, "eval");
  const DecoderLayerWeights weights =
      to_compute(load_decoder_layer(context.checkpoint, context.config, layer), device, context.compute_dtype);
  for (int64_t w = 0; w < inputs.size(); ++w) {
    outputs.put(w, decoder_layer_forward(weights, context.config, rope, inputs.get(w).to(device)));
  }
}

}  // namespace

void evaluate_streamed(const StageContext& context, const at::Tensor& windows, const MemoryPlan& memory,
                       const std::filesystem::path& spill_dir, PerplexityAccumulator& accumulator) {
  c10::InferenceMode inference_guard;
  const int64_t n_windows = windows.size(0);
  const int64_t seqlen = windows.size(1);
  auto inputs = make_planned_store(memory, n_windows, spill_dir, context.rank(), "eval-a");
  auto outputs = make_planned_store(memory, n_windows, spill_dir, context.rank(), "eval-b");
  if (context.is_first()) {
    const EmbeddingWeights embedding = load_embedding(context.checkpoint, context.config);
    for (int64_t w = 0; w < n_windows; ++w) {
      inputs->put(w, embed_tokens(embedding, windows.slice(0, w, w + 1)).to(context.device, context.compute_dtype));
    }
  } else {
    receive_activations(*context.transport, context.previous_rank(), {1, seqlen, context.config.hidden_size},
                        context.compute_dtype, context.device, kTagEvaluation, *inputs);
  }
  const RopeTables rope = make_rope_tables(context.config, seqlen, context.device);
  Progress progress("eval (streamed) layer", context.stage.n_layers(), 2.0, /*every_rank=*/true);
  for (int64_t layer = context.stage.first_layer; layer < context.stage.end_layer; ++layer) {
    try {
      layer_pass(context, layer, context.device, rope, *inputs, *outputs);
    } catch (...) {
      if (!is_out_of_memory(std::current_exception())) throw;
      log::warn("layer {}/{}: the eval pass ran out of memory on {}; retrying the layer on cpu", layer + 1,
                context.config.n_layers, context.device.str());
      release_device_caches();
      const c10::Device cpu(c10::kCPU);
      layer_pass(context, layer, cpu, context.device.is_cpu() ? rope : make_rope_tables(context.config, seqlen, cpu),
                 *inputs, *outputs);
    }
    std::swap(inputs, outputs);
    return_free_memory();
    progress.update(layer - context.stage.first_layer + 1);
  }
  if (!context.is_last()) {
    for (int64_t w = 0; w < n_windows; ++w) {
      context.transport->send(inputs->get(w).to(context.device), context.next_rank(), SendOptions{kTagEvaluation});
    }
    return;
  }
  const HeadWeights head = to_compute(load_head(context.checkpoint, context.config), context.device, context.compute_dtype);
  for (int64_t w = 0; w < n_windows; ++w) {
    accumulator.add(head_forward(head, context.config, inputs->get(w).to(context.device)), windows.slice(0, w, w + 1));
  }
}

}  // namespace pipeprune
