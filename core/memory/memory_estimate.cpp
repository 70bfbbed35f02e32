#include "core/memory/memory_estimate.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/accumulate.h>

#include <algorithm>

#include "core/memory/host_memory.h"
#include "core/model/decoder.h"
#include "core/model/layer_weights.h"
#include "core/prune/input_assignment.h"

namespace pipeprune {
namespace {

int64_t layer_parameters(const ModelSpec& spec, int64_t layer) {
  int64_t n = 0;
  for (const SpecTensor& t : spec.layers[static_cast<size_t>(layer)]) n += c10::multiply_integers(t.shape);
  return n;
}

// Stored bytes + compute copy of one layer.
int64_t layer_weights(const ModelSpec& spec, int64_t layer, int64_t compute_element_size) {
  return spec.bytes_layer(layer) + layer_parameters(spec, layer) * compute_element_size;
}

int64_t statistics_of(const ModelConfig& config, const EstimateSettings& settings, LinearKind kind) {
  return pruner_statistics_bytes(settings.method, linear_shape(config, kind)[1]);
}

// Statistics of the linears pruned together (all seven, or the largest true-sequential group),
// one per distinct input (input_owner): each true-sequential group has exactly one.
int64_t layer_statistics(const ModelConfig& config, const EstimateSettings& settings) {
  int64_t sum = 0;
  int64_t largest = 0;
  for (LinearKind kind : layer_linears(config)) {
    if (input_owner(kind) != kind) continue;
    sum += statistics_of(config, settings, kind);
    largest = std::max(largest, statistics_of(config, settings, kind));
  }
  return !settings.true_sequential || settings.dense_calibration ? sum : largest;
}

// --parallel samples: what a rank holds while a layer's statistics are reduced, as the rank at
// `offset` after the layer's owner (the assignment turns with the owner): the totals of the
// inputs it prunes, and the largest one it receives into. The worst group with true_sequential.
struct ReductionShare {
  int64_t totals = 0;
  int64_t largest = 0;
};

ReductionShare reduction_share(const ModelConfig& config, const EstimateSettings& settings, int offset) {
  std::vector<std::vector<LinearKind>> groups;
  std::vector<LinearKind> inputs;
  for (LinearKind kind : layer_linears(config)) {
    if (input_owner(kind) == kind) inputs.push_back(kind);
  }
  if (settings.true_sequential) {
    for (LinearKind kind : inputs) groups.push_back({kind});
  } else {
    groups.push_back(inputs);
  }
  ReductionShare most;
  for (const auto& group : groups) {
    const std::vector<int> ranks = assign_inputs(config, settings.method, group, settings.world_size, 0);
    ReductionShare share;
    for (size_t i = 0; i < group.size(); ++i) {
      if (ranks[i] != offset) continue;
      share.totals += statistics_of(config, settings, group[i]);
      share.largest = std::max(share.largest, statistics_of(config, settings, group[i]));
    }
    if (share.totals + share.largest > most.totals + most.largest) most = share;
  }
  return most;
}

// Pruning one linear: its fp32 working copy and the mask computation (the mask included). The
// linears sharing an input share what the first one's prune made of the statistics, read-only
// (SparseGPT's H^-1 factor), which that prune's scratch already counts.
int64_t layer_mask_scratch(const ModelConfig& config, const EstimateSettings& settings) {
  int64_t largest = 0;
  for (LinearKind kind : layer_linears(config)) {
    const auto shape = linear_shape(config, kind);
    const int64_t weight = shape[0] * shape[1] * 4;
    largest = std::max(largest, weight + mask_scratch_bytes(settings.method, settings.nm_pattern, shape[0], shape[1]));
  }
  return largest;
}

// One sample through a layer. decoder_layer_scratch_bytes() adds up every temporary of the
// forward; many are freed before the next is made, and the measured peak is about half of it
// (hidden 512-1024, 256-2048 tokens, fp32, on this LibTorch).
int64_t forward_scratch_bytes(const ModelConfig& config, int64_t seqlen, int64_t compute_element_size) {
  const auto dtype = compute_element_size == 4 ? at::kFloat : at::kBFloat16;
  return decoder_layer_scratch_bytes(config, 1, seqlen, seqlen, dtype) / 2;
}

struct ActivationSplit {
  int64_t ram = 0;
  int64_t spilled = 0;
};

// `stores` activation stores of `samples` samples each, sharing `ram_allowed` bytes of RAM.
ActivationSplit split_activations(int64_t stores, int64_t samples, int64_t sample_bytes, int64_t ram_allowed) {
  const int64_t total = stores * samples * sample_bytes;
  if (ram_allowed < 0 || total <= ram_allowed) return {total, 0};
  // Each store keeps whole samples in RAM up to its share, at least none.
  const int64_t per_store = ram_allowed / std::max<int64_t>(1, stores);
  const int64_t in_ram = std::min(samples, per_store / std::max<int64_t>(1, sample_bytes)) * sample_bytes;
  return {stores * in_ram, total - stores * in_ram};
}

}  // namespace

int64_t mask_scratch_bytes(PruneMethod method, bool nm_pattern, int64_t rows, int64_t cols) {
  const int64_t weight = rows * cols * 4;
  switch (method) {
    case PruneMethod::kMagnitude:
      return nm_pattern ? weight * 13 / 10 : 2 * weight;
    case PruneMethod::kWanda:
      return 2 * weight;
    case PruneMethod::kSparseGPT:
      return cols * cols * 4 * 33 / 20 + weight * 6 / 5;
  }
  return 2 * weight;
}

int64_t prune_activation_stores(const StageShare& share, bool calibrated) {
  if (!calibrated) return 0;
  return share.end_layer - share.first_layer >= 2 || !share.head ? 2 : 1;
}

int64_t prune_activation_stores(const StageShare& share, const EstimateSettings& settings, int64_t n_model_layers) {
  const bool calibrated = settings.method != PruneMethod::kMagnitude;
  if (!settings.sample_parallel || !calibrated) return prune_activation_stores(share, calibrated);
  return n_model_layers >= 2 ? 2 : 1;
}

std::vector<MemoryEstimate> prune_phases(const ModelSpec& spec, const StageShare& share, const EstimateSettings& settings) {
  const ModelConfig& config = spec.config;
  const bool calibrated = settings.method != PruneMethod::kMagnitude;
  const int64_t sample_bytes = settings.seqlen * config.hidden_size * settings.compute_element_size;
  const int64_t n_layers = share.end_layer - share.first_layer;
  const int64_t forward_scratch =
      calibrated ? forward_scratch_bytes(config, settings.seqlen, settings.compute_element_size) : 0;
  const int64_t mask_scratch = layer_mask_scratch(config, settings);
  const int64_t stats = calibrated ? layer_statistics(config, settings) : 0;

  std::vector<MemoryEstimate> phases;
  auto consider = [&](MemoryEstimate phase, const std::string& name) {
    phase.baseline = settings.baseline_bytes;
    phase.peak_phase = name;
    phases.push_back(std::move(phase));
  };

  if (settings.dense_calibration) {
    // Every owned layer (stored + compute) and every pruner at once; one sample in flight.
    MemoryEstimate phase;
    for (int64_t l = share.first_layer; l < share.end_layer; ++l) {
      phase.weights += layer_weights(spec, l, settings.compute_element_size);
      phase.weights_stored += spec.bytes_layer(l);
    }
    if (share.embedding) phase.weights += spec.bytes_embedding();
    if (share.embedding) phase.weights_stored += spec.bytes_embedding();
    phase.activations = calibrated ? 2 * sample_bytes : 0;
    phase.statistics = stats * n_layers;
    phase.scratch = std::max(forward_scratch, mask_scratch);
    consider(phase, "dense stats pass");
  } else if (settings.sample_parallel && calibrated) {
    const int64_t stores = prune_activation_stores(share, settings, spec.n_layers());
    const ActivationSplit activations =
        split_activations(stores, settings.local_samples, sample_bytes, settings.activation_ram_bytes);
    if (share.embedding) {
      // The first rank embeds every sample and sends the others' on; it keeps its own.
      MemoryEstimate phase;
      phase.weights = spec.bytes_embedding();
      phase.weights_stored = phase.weights;
      const ActivationSplit one = split_activations(1, settings.local_samples, sample_bytes, settings.activation_ram_bytes);
      phase.activations = one.ram;
      phase.activations_spilled = one.spilled;
      phase.scratch = sample_bytes;
      consider(phase, "embedding");
    }
    // The largest block sum in flight (taken from the pruner while a fresh one starts).
    int64_t largest_block = 0;
    for (LinearKind kind : layer_linears(config)) largest_block = std::max(largest_block, statistics_of(config, settings, kind));
    for (int64_t l = 0; l < spec.n_layers(); ++l) {
      const bool owner = l >= share.first_layer && l < share.end_layer;
      // For another rank's layer: the largest share of any rank but its owner.
      ReductionShare mine = owner ? reduction_share(config, settings, 0) : ReductionShare{};
      for (int offset = 1; !owner && offset < settings.world_size; ++offset) {
        const ReductionShare other = reduction_share(config, settings, offset);
        if (other.totals + other.largest > mine.totals + mine.largest) mine = other;
      }
      const std::string name = "layer " + std::to_string(l) + (owner ? " (owner)" : "");
      MemoryEstimate reduce;
      reduce.weights = layer_weights(spec, l, settings.compute_element_size);
      reduce.weights_stored = spec.bytes_layer(l);
      reduce.activations = activations.ram;
      reduce.activations_spilled = activations.spilled;
      // Stats passes and reductions: every input's block sums and this rank's totals, with one
      // sample's forward or one block sent and one received on top.
      reduce.statistics = stats + mine.totals;
      reduce.scratch = std::max(forward_scratch, mine.largest > 0 ? largest_block + mine.largest : largest_block);
      consider(reduce, name + " stats");
      // Pruning: the totals have become the pruners' statistics.
      MemoryEstimate prune = reduce;
      prune.statistics = stats;
      prune.scratch = mask_scratch;
      consider(prune, name + " mask");
    }
  } else {
    const int64_t stores = prune_activation_stores(share, calibrated);
    const ActivationSplit activations =
        split_activations(stores, settings.nsamples, sample_bytes, settings.activation_ram_bytes);
    if (share.embedding && calibrated) {
      MemoryEstimate phase;
      phase.weights = spec.bytes_embedding();
      phase.weights_stored = phase.weights;
      const ActivationSplit one = split_activations(1, settings.nsamples, sample_bytes, settings.activation_ram_bytes);
      phase.activations = one.ram;
      phase.activations_spilled = one.spilled;
      consider(phase, "embedding");
    }
    for (int64_t l = share.first_layer; l < share.end_layer; ++l) {
      MemoryEstimate phase;
      phase.weights = layer_weights(spec, l, settings.compute_element_size);
      phase.weights_stored = spec.bytes_layer(l);
      phase.activations = activations.ram;
      phase.activations_spilled = activations.spilled;
      phase.statistics = stats;
      phase.scratch = std::max(forward_scratch, mask_scratch);
      consider(phase, "layer " + std::to_string(l));
    }
  }
  if (share.embedding) {
    // Saving: the first rank copies the embedding, final norm and lm_head into the output.
    MemoryEstimate phase;
    phase.weights = std::max(spec.bytes_embedding(), spec.bytes_head());
    phase.weights_stored = phase.weights;
    consider(phase, "saving");
  }
  return phases;
}

MemoryEstimate estimate_prune_rank(const ModelSpec& spec, const StageShare& share, const EstimateSettings& settings) {
  MemoryEstimate peak;
  for (MemoryEstimate& phase : prune_phases(spec, share, settings)) {
    if (phase.total() > peak.total() || peak.peak_phase.empty()) peak = std::move(phase);
  }
  return peak;
}

int64_t minimum_prune_budget(const ModelSpec& spec, const StageShare& share, const EstimateSettings& settings) {
  EstimateSettings tight = settings;
  const int64_t sample_bytes = settings.seqlen * spec.config.hidden_size * settings.compute_element_size;
  tight.activation_ram_bytes = 2 * sample_bytes;
  return estimate_prune_rank(spec, share, tight).total();
}

MemoryEstimate estimate_eval_rank(const ModelSpec& spec, const StageShare& share, int64_t n_windows,
                                  int64_t seqlen, int64_t compute_element_size, int64_t baseline_bytes,
                                  bool resident) {
  const ModelConfig& config = spec.config;
  const int64_t sample_bytes = seqlen * config.hidden_size * compute_element_size;
  const int64_t forward_scratch = forward_scratch_bytes(config, seqlen, compute_element_size);
  // The last rank also holds one window's logits and their fp32 log-softmax.
  const int64_t logits = share.head ? 3 * seqlen * config.vocab_size * 4 : 0;
  MemoryEstimate estimate;
  estimate.baseline = baseline_bytes;
  if (resident) {
    int64_t params = 0;
    int64_t largest_stored = 0;
    for (int64_t l = share.first_layer; l < share.end_layer; ++l) {
      params += layer_parameters(spec, l);
      largest_stored = std::max(largest_stored, spec.bytes_layer(l));
    }
    estimate.weights = params * compute_element_size + largest_stored;
    estimate.activations = 2 * sample_bytes;
    estimate.peak_phase = "resident layers";
  } else {
    int64_t largest = 0;
    for (int64_t l = share.first_layer; l < share.end_layer; ++l) {
      largest = std::max(largest, layer_weights(spec, l, compute_element_size));
    }
    estimate.weights = largest;
    estimate.activations = 2 * n_windows * sample_bytes;
    estimate.peak_phase = "streamed layer";
  }
  if (share.embedding) estimate.weights += spec.bytes_embedding();
  if (share.head) {
    // Final norm and lm_head, stored and in the compute dtype.
    int64_t head_params = 0;
    for (const SpecTensor& t : spec.head) head_params += c10::multiply_integers(t.shape);
    estimate.weights += spec.bytes_head() + head_params * compute_element_size;
  }
  estimate.scratch = std::max(forward_scratch, logits);
  return estimate;
}

int64_t runtime_baseline_bytes() {
  c10::InferenceMode guard;
  // A small GEMM makes OpenBLAS (and ATen's thread pool) allocate their per-thread buffers,
  // which every pipeprune rank holds once it has run a forward pass.
  const at::Tensor a = at::ones({256, 256});
  const at::Tensor b = a.matmul(a);
  (void)b;
  return process_rss_bytes();
}

}  // namespace pipeprune
