// One Llama-7B decoder layer forward at seqlen 2048 in fp32 on the CPU, and the GEMMs of its
// shapes on their own: the ratio is issue 6's "forward at >= 60% of the GEMM rate".
#include <benchmark/benchmark.h>
#include <c10/core/InferenceMode.h>

#include "benchmarks/bench_util.h"
#include "core/prune/pruner.h"

namespace pipeprune::bench {
namespace {

constexpr int64_t kTokens = 2048;

const ModelConfig& config() {
  static const ModelConfig c = synthetic_shape_config("llama-7b");
  return c;
}

void set_flops(benchmark::State& state, int64_t flops) {
  state.counters["GFLOP/s"] = benchmark::Counter(static_cast<double>(flops) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void BM_DecoderLayerForward(benchmark::State& state) {
  configure_threads();
  c10::InferenceMode guard;
  const DecoderLayerWeights w = random_layer(config(), 11);
  const RopeTables rope = make_rope_tables(config(), kTokens, c10::Device(c10::kCPU));
  const at::Tensor x = random_normal({1, kTokens, config().hidden_size}, 12);
  for (auto _ : state) benchmark::DoNotOptimize(decoder_layer_forward(w, config(), rope, x).data_ptr());
  set_flops(state, layer_forward_flops(config(), kTokens));
}

// The stats pass of Wanda: the same forward with every linear's input fed to a pruner.
void BM_DecoderLayerForwardWandaTaps(benchmark::State& state) {
  configure_threads();
  c10::InferenceMode guard;
  const DecoderLayerWeights w = random_layer(config(), 11);
  const RopeTables rope = make_rope_tables(config(), kTokens, c10::Device(c10::kCPU));
  const at::Tensor x = random_normal({1, kTokens, config().hidden_size}, 12);
  PruneOptions options;
  options.method = PruneMethod::kWanda;
  std::vector<std::unique_ptr<LinearPruner>> pruners;
  for (LinearKind kind : kAllLinears) {
    const auto shape = linear_shape(config(), kind);
    pruners.push_back(make_linear_pruner(options, shape[0], shape[1], c10::Device(c10::kCPU)));
  }
  const LinearTap tap = [&](LinearKind kind, const at::Tensor& input) {
    pruners[static_cast<size_t>(kind)]->add_batch(input);
  };
  for (auto _ : state) benchmark::DoNotOptimize(decoder_layer_forward(w, config(), rope, x, 0, nullptr, &tap).data_ptr());
  set_flops(state, layer_forward_flops(config(), kTokens));
}

// at::linear of [1, 2048, in] by one of the layer's weights.
void BM_Gemm(benchmark::State& state, LinearKind kind) {
  configure_threads();
  c10::InferenceMode guard;
  const auto shape = linear_shape(config(), kind);
  const at::Tensor w = random_normal({shape[0], shape[1]}, 13, kSynthInitStd);
  const at::Tensor x = random_normal({1, kTokens, shape[1]}, 14);
  for (auto _ : state) benchmark::DoNotOptimize(at::linear(x, w).data_ptr());
  set_flops(state, linear_flops(config(), kind, kTokens));
}

// All seven linears of the layer back to back: the rate a forward made of GEMMs alone reaches.
void BM_GemmLayerLinears(benchmark::State& state) {
  configure_threads();
  c10::InferenceMode guard;
  const DecoderLayerWeights w = random_layer(config(), 11);
  const at::Tensor x = random_normal({1, kTokens, config().hidden_size}, 14);
  const at::Tensor xi = random_normal({1, kTokens, config().intermediate_size}, 15);
  int64_t flops = 0;
  for (LinearKind kind : kAllLinears) flops += linear_flops(config(), kind, kTokens);
  for (auto _ : state) {
    for (LinearKind kind : kAllLinears) {
      const at::Tensor& in = kind == LinearKind::kDown ? xi : x;
      benchmark::DoNotOptimize(at::linear(in, w[kind].weight).data_ptr());
    }
  }
  set_flops(state, flops);
}

BENCHMARK(BM_DecoderLayerForward)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_DecoderLayerForwardWandaTaps)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK_CAPTURE(BM_Gemm, q_4096x4096, LinearKind::kQ)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Gemm, up_11008x4096, LinearKind::kUp)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Gemm, down_4096x11008, LinearKind::kDown)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_GemmLayerLinears)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

}  // namespace
}  // namespace pipeprune::bench

BENCHMARK_MAIN();
