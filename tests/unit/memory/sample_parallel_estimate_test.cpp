// The estimator under --parallel samples, worked by hand for a small Llama: activations for the
// rank's own samples only, every layer's weights on every rank, and statistics as block sums of
// every input plus the reduced totals of the inputs the rank prunes and one received block sum.
#include <gtest/gtest.h>

#include "core/memory/memory_estimate.h"
#include "core/model/model_config.h"
#include "core/model/model_spec.h"

namespace pipeprune {
namespace {

ModelConfig small_llama() {
  ModelConfig config;
  config.model_type = "llama";
  config.hidden_size = 64;
  config.intermediate_size = 256;
  config.n_layers = 4;
  config.n_heads = 4;
  config.n_kv_heads = 4;
  config.head_dim = 16;
  config.vocab_size = 128;
  config.max_position_embeddings = 256;
  return config;
}

TEST(SampleParallelEstimate, ActivationsForOwnSamplesAndTotalsOfThePrunedInputs) {
  const ModelSpec spec = ModelSpec::from_config(small_llama(), DType::kF32);
  EstimateSettings pipeline;
  pipeline.method = PruneMethod::kSparseGPT;
  pipeline.nsamples = 16;
  pipeline.seqlen = 32;
  EstimateSettings samples = pipeline;
  samples.sample_parallel = true;
  samples.local_samples = 8;  // 16 samples over 2 ranks
  samples.world_size = 2;
  const int64_t sample_bytes = 32 * 64 * 4;
  // Rank 1 of 2 owns layers 2-3 and the head.
  const StageShare second{2, 4, false, true};
  const MemoryEstimate split = estimate_prune_rank(spec, second, samples);
  EXPECT_EQ(split.activations, 2 * 8 * sample_bytes);
  // Statistics per distinct input: q/k/v, o and gate/up read 64 columns, down 256.
  const int64_t stats = 3 * 64 * 64 * 4 + 256 * 256 * 4;
  // SparseGPT costs (input_assignment.h) deal gate/up to a layer's owner and down, q/k/v and o to
  // the other rank: 256^2 + 2 x 64^2 floats of totals there, and while reducing a down block sum
  // in flight and one received.
  EXPECT_EQ(split.statistics, stats + (256 * 256 + 2 * 64 * 64) * 4);
  EXPECT_EQ(split.scratch, 2 * 256 * 256 * 4);
  EXPECT_EQ(split.peak_phase, "layer 0 stats") << "a layer of the other rank sets the peak";
  // The first rank peaks on the same layers (2-3, the other rank's).
  EXPECT_EQ(estimate_prune_rank(spec, StageShare{0, 2, true, false}, samples).statistics, split.statistics);
  // One rank prunes everything: every total, and a down block sum in flight and one received.
  EstimateSettings alone = samples;
  alone.world_size = 1;
  alone.local_samples = 16;
  const MemoryEstimate one = estimate_prune_rank(spec, StageShare{0, 4, true, true}, alone);
  EXPECT_EQ(one.statistics, 2 * stats);
  EXPECT_EQ(one.scratch, 2 * 256 * 256 * 4);
  // The pipeline's last rank holds one store of every sample (its last layer's output is never
  // computed) and no totals.
  const MemoryEstimate whole = estimate_prune_rank(spec, second, pipeline);
  EXPECT_EQ(whole.activations, 2 * 16 * sample_bytes);
  EXPECT_EQ(whole.statistics, stats);
  // Every layer of the model is walked by every rank, so both stores are needed.
  EXPECT_EQ(prune_activation_stores(second, samples, 4), 2);
}

}  // namespace
}  // namespace pipeprune
