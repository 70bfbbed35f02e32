#include "dist/stage_runner.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "core/common/error.h"
#include "core/common/log.h"
#include "core/memory/host_memory.h"
#include "dist/device_fallback.h"

namespace pipeprune {

void LayerRun::begin(LayerPass pass) {
  pass_ = pass;
  faults_.before_pass(layer_, pass);
}

StageRunner::StageRunner(const StageContext& context, int64_t n_positions, FaultInjector& faults)
    : context_(context),
      faults_(faults),
      n_positions_(n_positions),
      rope_(make_rope_tables(context.config, n_positions, context.device)) {}

const RopeTables& StageRunner::rope_on(c10::Device device) {
  if (device == context_.device) return rope_;
  if (!cpu_rope_) cpu_rope_ = make_rope_tables(context_.config, n_positions_, device);
  return *cpu_rope_;
}

const EmbeddingWeights& StageRunner::embedding() {
  // Kept in the stored dtype: rows are upcast after the lookup, the same values as upcasting
  // the whole table first, without holding a compute copy of it.
  if (!embedding_) embedding_ = load_embedding(context_.checkpoint, context_.config);
  return *embedding_;
}

void StageRunner::with_retry(int64_t layer, RetryPolicy retry, const std::function<void(LayerRun&)>& attempt) {
  LayerRun run(layer, context_.device, rope_, faults_);
  try {
    attempt(run);
    return;
  } catch (...) {
    if (!is_out_of_memory(std::current_exception())) throw;
  }
  // Out of the catch block: the failed attempt's tensors are gone before the retry allocates.
  const std::string where = fmt::format("layer {}/{}: the {} pass ran out of memory on {}", layer + 1,
                                        context_.config.n_layers, layer_pass_name(run.pass()), context_.device.str());
  PIPEPRUNE_CHECK(retry == RetryPolicy::kRetryOnCpu, OutOfMemoryError,
                  where << ", and this pass cannot start over on the CPU; raise --max-memory, use more ranks, "
                           "or lower --nsamples/--seqlen");
  log::warn("{}; retrying the layer on cpu", where);
  release_device_caches();
  const c10::Device cpu(c10::kCPU);
  LayerRun on_cpu(layer, cpu, rope_on(cpu), faults_);
  attempt(on_cpu);
}

at::Tensor StageRunner::stage_input(const at::Tensor& tokens, int tag) {
  if (context_.is_first()) {
    return scale_embeddings(context_.config, embed_tokens(embedding(), tokens).to(context_.device, context_.compute_dtype));
  }
  RecvOptions options;
  options.tag = tag;
  options.expect.dtype = context_.compute_dtype;
  options.expect.shape = std::vector<int64_t>{tokens.size(0), tokens.size(1), context_.config.hidden_size};
  options.device = context_.device;
  return context_.transport->recv(context_.previous_rank(), options);
}

void StageRunner::hand_on(const at::Tensor& hidden, int tag) {
  context_.transport->send(hidden.to(context_.device), context_.next_rank(), SendOptions{tag});
}

std::unique_ptr<ActivationStore> StageRunner::run_layers(const LayerWalk& walk, LayerStep& step) {
  c10::InferenceMode inference_guard;
  const Stage& stage = context_.stage;
  const bool with_activations = walk.windows.defined();
  // Where the stage's last outputs go: the next rank, the job, or nowhere (the model's last
  // layer while pruning, whose output pass is skipped).
  const bool outputs_leave = !context_.is_last() || walk.keep_final_outputs;
  std::unique_ptr<ActivationStore> inputs;
  std::unique_ptr<ActivationStore> outputs;
  if (with_activations) {
    const int64_t n_samples = walk.windows.size(0);
    inputs = walk.make_store(n_samples, fmt::format("t{}-1", walk.tag));
    if (stage.n_layers() >= 2 || outputs_leave) outputs = walk.make_store(n_samples, fmt::format("t{}-2", walk.tag));
    const bool resident = embedding_.has_value();
    for (int64_t s = 0; s < n_samples; ++s) inputs->put(s, stage_input(walk.windows.slice(0, s, s + 1), walk.tag));
    // A layer-major walk needs the table only here; the memory plan does not hold it later.
    if (!resident) embedding_.reset();
  }
  for (int64_t layer = stage.first_layer; layer < stage.end_layer; ++layer) {
    faults_.before_layer(layer);
    const bool stage_last_layer = layer + 1 == stage.end_layer;
    ActivationStore* layer_outputs = with_activations && (!stage_last_layer || outputs_leave) ? outputs.get() : nullptr;
    with_retry(layer, walk.retry, [&](LayerRun& run) { step.run(run, inputs.get(), layer_outputs); });
    if (layer_outputs != nullptr) std::swap(inputs, outputs);
    return_free_memory();
    step.commit(layer);
  }
  if (!with_activations) return nullptr;
  // `inputs` now holds the stage's outputs; they leave only now that every layer succeeded.
  if (!context_.is_last()) {
    for (int64_t s = 0; s < inputs->size(); ++s) hand_on(inputs->get(s), walk.tag);
    return nullptr;
  }
  return walk.keep_final_outputs ? std::move(inputs) : nullptr;
}

std::unique_ptr<ActivationStore> StageRunner::run_layers_on_samples(const LayerWalk& walk, const SampleSplit& split,
                                                                   LayerStep& step) {
  c10::InferenceMode inference_guard;
  Transport& transport = *context_.transport;
  const int64_t n_layers = context_.config.n_layers;
  const bool with_activations = walk.windows.defined();
  std::unique_ptr<ActivationStore> inputs;
  std::unique_ptr<ActivationStore> outputs;
  if (with_activations) {
    const int64_t mine = split.count_of(context_.rank());
    inputs = walk.make_store(mine, fmt::format("t{}-1", walk.tag));
    if (n_layers >= 2 || walk.keep_final_outputs) outputs = walk.make_store(mine, fmt::format("t{}-2", walk.tag));
    // The first rank embeds every sample, in order, and sends each to the rank holding it.
    if (context_.is_first()) {
      for (int64_t s = 0; s < split.n_samples(); ++s) {
        const at::Tensor tokens = walk.windows.slice(0, s, s + 1);
        const at::Tensor hidden =
            scale_embeddings(context_.config, embed_tokens(embedding(), tokens).to(context_.device, context_.compute_dtype));
        const int holder = split.rank_of(s);
        if (holder == context_.rank()) {
          inputs->put(split.local_index(s), hidden);
        } else {
          transport.send(hidden, holder, SendOptions{walk.tag});
        }
      }
      embedding_.reset();
    } else {
      RecvOptions options;
      options.tag = walk.tag;
      options.expect.dtype = context_.compute_dtype;
      options.expect.shape = std::vector<int64_t>{1, walk.windows.size(1), context_.config.hidden_size};
      options.device = context_.device;
      for (int64_t s : split.samples_of(context_.rank())) inputs->put(split.local_index(s), transport.recv(0, options));
    }
  }
  for (int64_t layer = 0; layer < n_layers; ++layer) {
    // As in the pipeline, the layer's owner is the rank a layer fault targets; the others are
    // then waiting for it in a collective, and the abort ends them.
    if (context_.stage.owns_layer(layer)) faults_.before_layer(layer);
    const bool last = layer + 1 == n_layers;
    ActivationStore* layer_outputs = with_activations && (!last || walk.keep_final_outputs) ? outputs.get() : nullptr;
    with_retry(layer, RetryPolicy::kFail, [&](LayerRun& run) { step.run(run, inputs.get(), layer_outputs); });
    if (layer_outputs != nullptr) std::swap(inputs, outputs);
    return_free_memory();
    step.commit(layer);
  }
  return with_activations && walk.keep_final_outputs ? std::move(inputs) : nullptr;
}

at::Tensor StageRunner::run_sample(const at::Tensor& tokens, int tag, LayerPass pass, RetryPolicy retry,
                                   const SampleStep& step) {
  c10::InferenceMode inference_guard;
  at::Tensor hidden = stage_input(tokens, tag);
  const Stage& stage = context_.stage;
  for (int64_t layer = stage.first_layer; layer < stage.end_layer; ++layer) {
    at::Tensor output;
    with_retry(layer, retry, [&](LayerRun& run) {
      run.begin(pass);
      output = step(run, static_cast<size_t>(layer - stage.first_layer), hidden.to(run.device())).to(context_.device);
    });
    hidden = std::move(output);
  }
  if (!context_.is_last()) {
    hand_on(hidden, tag);
    return at::Tensor();
  }
  return hidden;
}

}  // namespace pipeprune
