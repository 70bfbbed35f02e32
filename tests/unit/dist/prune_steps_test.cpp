// Pruning one real decoder layer (stories260K layer 1, real calibration activations): the
// sequential and true-sequential drivers against compositions of the same steps written out
// here, and SparseGPT's reconstruction error against Wanda's.
#include "dist/prune_steps.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include "core/io/safetensors.h"
#include "core/model/decoder.h"
#include "core/tokenizer/tokenizer.h"

namespace pipeprune {
namespace {

const std::string kModel = std::string(PIPEPRUNE_SOURCE_DIR) + "/examples/stories260K";
constexpr int64_t kLayer = 1;
constexpr int64_t kSeqlen = 64;

struct RealLayer {
  ModelConfig config;
  DecoderLayerWeights stored;
  RopeTables rope;
  std::unique_ptr<ActivationStore> inputs;  // activations entering layer kLayer (dense model)
};

RealLayer real_layer(int64_t nsamples) {
  c10::InferenceMode guard;
  const auto checkpoint = SafetensorsCheckpoint::open(kModel);
  RealLayer r;
  r.config = ModelConfig::from_file(kModel + "/config.json");
  r.rope = make_rope_tables(r.config, kSeqlen, at::kCPU);
  const auto tokenizer = load_tokenizer(kModel);
  const auto ids = tokenizer->encode_with_bos(
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her "
      "friends. One day, she saw a big red ball under a tree and ran to get it. Her mom smiled and said hello.");
  const EmbeddingWeights embedding = load_embedding(checkpoint, r.config);
  const DecoderLayerWeights layer0 = to_compute(load_decoder_layer(checkpoint, r.config, 0), at::kCPU, at::kFloat);
  r.inputs = make_memory_activation_store(nsamples);
  for (int64_t s = 0; s < nsamples; ++s) {
    std::vector<int64_t> window(ids.begin() + s, ids.begin() + s + kSeqlen);
    const at::Tensor tokens = at::tensor(window, at::kLong).unsqueeze(0);
    const at::Tensor hidden = embed_tokens(embedding, tokens).to(at::kFloat);
    r.inputs->put(s, decoder_layer_forward(layer0, r.config, r.rope, hidden));
  }
  r.stored = load_decoder_layer(checkpoint, r.config, kLayer);
  return r;
}

LayerPruneOptions options_for(PruneMethod method, bool true_sequential) {
  LayerPruneOptions options;
  options.prune.method = method;
  options.prune.pattern = SparsityPattern::parse("unstructured", 0.5);
  options.true_sequential = true_sequential;
  return options;
}

// The steps written out: for each group, feed the group's pruners from a forward of the layer
// as it is now, then prune the group.
DecoderLayerWeights manual_prune(const RealLayer& r, PruneMethod method,
                                 const std::vector<std::vector<LinearKind>>& groups) {
  c10::InferenceMode guard;
  DecoderLayerWeights w = to_compute(r.stored, at::kCPU, at::kFloat);
  PruneOptions prune = options_for(method, false).prune;
  for (const auto& group : groups) {
    std::map<LinearKind, std::unique_ptr<LinearPruner>> pruners;
    for (LinearKind kind : group) {
      const auto shape = linear_shape(r.config, kind);
      pruners[kind] = make_linear_pruner(prune, shape[0], shape[1], at::kCPU);
    }
    const LinearTap tap = [&](LinearKind kind, const at::Tensor& input) {
      if (pruners.count(kind)) pruners[kind]->add_batch(input);
    };
    for (int64_t s = 0; s < r.inputs->size(); ++s) decoder_layer_forward(w, r.config, r.rope, r.inputs->get(s), 0, nullptr, &tap);
    for (LinearKind kind : group) pruners[kind]->prune(w[kind].weight);
  }
  return w;
}

TEST(PruneLayerSequential, EqualsTheStepsWrittenOut) {
  const RealLayer r = real_layer(6);
  for (PruneMethod method : {PruneMethod::kWanda, PruneMethod::kSparseGPT}) {
    DecoderLayerWeights stored = r.stored;
    auto outputs = make_memory_activation_store(6);
    prune_layer_sequential(stored, r.config, r.rope, r.inputs.get(), outputs.get(), options_for(method, false));
    const DecoderLayerWeights expected =
        manual_prune(r, method, {std::vector<LinearKind>(kAllLinears.begin(), kAllLinears.end())});
    for (LinearKind kind : kAllLinears) {
      EXPECT_TRUE(at::equal(stored[kind].weight, expected[kind].weight)) << linear_name(kind);
    }
    // The output pass runs the pruned layer.
    c10::InferenceMode guard;
    for (int64_t s = 0; s < 6; ++s) {
      EXPECT_TRUE(at::equal(outputs->get(s), decoder_layer_forward(expected, r.config, r.rope, r.inputs->get(s))));
    }
  }
}

TEST(PruneLayerSequential, TrueSequentialGroupsSeeTheEarlierGroupsPruned) {
  const RealLayer r = real_layer(6);
  DecoderLayerWeights stored = r.stored;
  prune_layer_sequential(stored, r.config, r.rope, r.inputs.get(), nullptr, options_for(PruneMethod::kSparseGPT, true));
  const DecoderLayerWeights expected = manual_prune(
      r, PruneMethod::kSparseGPT,
      {{LinearKind::kQ, LinearKind::kK, LinearKind::kV}, {LinearKind::kO}, {LinearKind::kGate, LinearKind::kUp}, {LinearKind::kDown}});
  for (LinearKind kind : kAllLinears) {
    EXPECT_TRUE(at::equal(stored[kind].weight, expected[kind].weight)) << linear_name(kind);
  }
  // And it is not the one-group result: o, gate, up and down saw pruned inputs.
  DecoderLayerWeights one_group = r.stored;
  prune_layer_sequential(one_group, r.config, r.rope, r.inputs.get(), nullptr, options_for(PruneMethod::kSparseGPT, false));
  EXPECT_TRUE(at::equal(one_group[LinearKind::kQ].weight, stored[LinearKind::kQ].weight));
  EXPECT_FALSE(at::equal(one_group[LinearKind::kDown].weight, stored[LinearKind::kDown].weight));
}

TEST(PruneLayerSequential, SparseGptReconstructsARealLayerBetterThanWanda) {
  const RealLayer r = real_layer(8);
  c10::InferenceMode guard;
  const DecoderLayerWeights dense = to_compute(r.stored, at::kCPU, at::kFloat);
  // Inputs of every linear of the dense layer.
  std::map<LinearKind, std::vector<at::Tensor>> inputs;
  const LinearTap tap = [&](LinearKind kind, const at::Tensor& x) { inputs[kind].push_back(x.reshape({-1, x.size(-1)})); };
  for (int64_t s = 0; s < 8; ++s) decoder_layer_forward(dense, r.config, r.rope, r.inputs->get(s), 0, nullptr, &tap);
  std::map<PruneMethod, DecoderLayerWeights> pruned;
  for (PruneMethod method : {PruneMethod::kWanda, PruneMethod::kSparseGPT}) {
    DecoderLayerWeights stored = r.stored;
    prune_layer_sequential(stored, r.config, r.rope, r.inputs.get(), nullptr, options_for(method, false));
    pruned[method] = to_compute(stored, at::kCPU, at::kFloat);
  }
  double total_wanda = 0, total_sparsegpt = 0;
  for (LinearKind kind : kAllLinears) {
    const at::Tensor x = at::cat(inputs[kind]);
    const at::Tensor reference = x.matmul(dense[kind].weight.t());
    const double wanda = (reference - x.matmul(pruned[PruneMethod::kWanda][kind].weight.t())).norm().item<double>();
    const double sparsegpt = (reference - x.matmul(pruned[PruneMethod::kSparseGPT][kind].weight.t())).norm().item<double>();
    EXPECT_LT(sparsegpt, wanda) << linear_name(kind);
    total_wanda += wanda;
    total_sparsegpt += sparsegpt;
  }
  std::printf("||WX - W'X|| summed over layer %lld: wanda %.4f, sparsegpt %.4f\n", static_cast<long long>(kLayer),
              total_wanda, total_sparsegpt);
}

}  // namespace
}  // namespace pipeprune
