// The estimator knows each family's tensors: its weights are the bytes of the tensors the
// family's config implies (gemma's four norms, qwen3's q/k norms, phi3's fused matrices), and
// its statistics count one per distinct linear input, so phi3's fused qkv_proj and gate_up_proj
// need exactly what a Llama with the same rows split needs.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <string>

#include "core/memory/memory_estimate.h"
#include "core/model/model_config.h"
#include "core/model/model_spec.h"

namespace pipeprune {
namespace {

ModelConfig fixture(const std::string& name) {
  return ModelConfig::from_file(std::string(PIPEPRUNE_SOURCE_DIR) + "/tests/fixtures/random_models/" + name + ".json");
}

MemoryEstimate estimate(const ModelConfig& config, PruneMethod method, bool true_sequential = false) {
  const ModelSpec spec = ModelSpec::from_config(config, DType::kF32);
  EstimateSettings settings;
  settings.method = method;
  settings.true_sequential = true_sequential;
  settings.nsamples = 4;
  settings.seqlen = 32;
  return estimate_prune_rank(spec, StageShare{0, config.n_layers, true, true}, settings);
}

TEST(FamilyEstimate, Phi3FusedStatistics_EqualTheSplitTwins) {
  const ModelConfig phi3 = fixture("phi3_fused_6layers");  // hidden 64, intermediate 128
  ModelConfig llama = phi3;
  llama.model_type = "llama";
  llama.fused_projections = false;
  for (PruneMethod method : {PruneMethod::kWanda, PruneMethod::kSparseGPT}) {
    for (bool true_sequential : {false, true}) {
      EXPECT_EQ(estimate(phi3, method, true_sequential).statistics, estimate(llama, method, true_sequential).statistics);
    }
  }
  // SparseGPT: one fp32 Hessian per input: qkv and o and gate_up read 64 features, down 128.
  EXPECT_EQ(estimate(phi3, PruneMethod::kSparseGPT).statistics, (3 * 64 * 64 + 128 * 128) * 4);
  // Same parameters as the twin, in four matrices instead of seven.
  EXPECT_EQ(ModelSpec::from_config(phi3, DType::kF32).bytes_total(), ModelSpec::from_config(llama, DType::kF32).bytes_total());
}

TEST(FamilyEstimate, ExtraNorms_CountedInTheLayerWeights) {
  for (const auto& [name, extra_per_layer] : std::vector<std::pair<std::string, int64_t>>{
           {"gemma2_6layers", 2 * 64},                  // pre/post feed-forward norms
           {"gemma3_text_6layers", 2 * 64 + 2 * 32},    // and q/k norms over head_dim 32
           {"qwen3_qk_norm_6layers", 2 * 32}}) {         // q/k norms over head_dim 32
    SCOPED_TRACE(name);
    const ModelConfig config = fixture(name);
    ModelConfig plain = config;
    plain.model_type = "llama";
    plain.qk_norm = plain.sandwich_norms = false;
    const ModelSpec spec = ModelSpec::from_config(config, DType::kF32), plain_spec = ModelSpec::from_config(plain, DType::kF32);
    EXPECT_EQ(spec.bytes_layer(0) - plain_spec.bytes_layer(0), extra_per_layer * 4);
    EXPECT_GT(estimate(config, PruneMethod::kWanda).weights, estimate(plain, PruneMethod::kWanda).weights);
  }
}

}  // namespace
}  // namespace pipeprune
