// Shared set-up of the benchmark programs: threads, seeded random tensors, FLOP counts of a
// decoder layer. Header-only; used from one thread before timing starts.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <thread>

#include "core/common/large_page_allocator.h"
#include "core/model/decoder.h"
#include "core/model/layer_weights.h"
#include "core/model/model_config.h"
#include "core/model/synthetic_model.h"

namespace pipeprune::bench {

// Threads as pipeprune uses them by default: every core, for ATen and OpenBLAS alike.
// PIPEPRUNE_BENCH_THREADS overrides.
inline int configure_threads() {
  static const int threads = [] {
    const char* env = std::getenv("PIPEPRUNE_BENCH_THREADS");
    int n = env != nullptr ? std::atoi(env) : static_cast<int>(std::thread::hardware_concurrency());
    if (n < 1) n = 1;
    // main()'s host-memory policy (PIPEPRUNE_ALLOCATOR=default keeps ATen's allocator, for A/B runs).
    configure_host_allocation();
    at::set_num_threads(n);
    using SetThreads = void (*)(int);
    if (auto* set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set(n);
    return n;
  }();
  return threads;
}

// N(0, std^2) values from the synthetic-model generator: the same numbers on every run.
inline at::Tensor random_normal(at::IntArrayRef shape, uint64_t seed, float std = 1.0f) {
  at::Tensor t = at::empty(shape, at::kFloat);
  fill_synthetic_normal(t.data_ptr<float>(), t.numel(), synthetic_tensor_key(seed, "bench"), 0, std);
  return t;
}

// One decoder layer in fp32 with synthetic weights (std 0.02, norms 1, biases 0).
inline DecoderLayerWeights random_layer(const ModelConfig& config, uint64_t seed) {
  DecoderLayerWeights w;
  w.layer = 0;
  w.norm(NormKind::kInput) = at::ones({config.hidden_size}, at::kFloat);
  w.norm(NormKind::kPostAttention) = at::ones({config.hidden_size}, at::kFloat);
  uint64_t s = seed;
  for (LinearKind kind : kAllLinears) {
    const auto shape = linear_shape(config, kind);
    w[kind].weight = random_normal({shape[0], shape[1]}, ++s, kSynthInitStd);
    if (linear_has_bias(config, kind)) w[kind].bias = at::zeros({shape[0]}, at::kFloat);
  }
  return w;
}

inline int64_t linear_flops(const ModelConfig& config, LinearKind kind, int64_t tokens) {
  const auto shape = linear_shape(config, kind);
  return 2 * tokens * shape[0] * shape[1];
}

// Multiply-adds of one sequence of `tokens` through one layer, counted as 2 FLOPs each: the
// seven linears, plus QK^T and PV over the full square score matrix (the forward computes the
// masked half too, so that is the work it does; a causal-only kernel would need half).
inline int64_t layer_forward_flops(const ModelConfig& config, int64_t tokens) {
  int64_t flops = 0;
  for (LinearKind kind : kAllLinears) flops += linear_flops(config, kind, tokens);
  return flops + 4 * tokens * tokens * config.q_size();
}

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace pipeprune::bench
