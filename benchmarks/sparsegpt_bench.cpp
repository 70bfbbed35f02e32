// SparseGPT on a 4096x4096 (q/o_proj of Llama-7B) and a 4096x11008 (down_proj) layer: the
// Hessian inverse and the blocked column sweep, from a Hessian of random calibration inputs.
// Each run takes seconds, so few iterations.
#include <benchmark/benchmark.h>
#include <c10/core/InferenceMode.h>

#include "benchmarks/bench_util.h"
#include "core/prune/calibration_stats.h"
#include "core/prune/pruner.h"
#include "core/prune/sparsegpt_sweep.h"
#include "core/prune/sparsity_pattern.h"

namespace pipeprune::bench {
namespace {

// H as the pipeline accumulates it, from 4 sequences of 512 random tokens.
at::Tensor make_hessian(int64_t cols) {
  c10::InferenceMode guard;
  at::Tensor h = at::zeros({cols, cols}, at::kFloat);
  int64_t n = 0;
  for (int s = 0; s < 4; ++s) add_hessian_batch(h, &n, random_normal({1, 512, cols}, 100 + s));
  return h;
}

void BM_SparseGPT(benchmark::State& state, const char* pattern) {
  configure_threads();
  c10::InferenceMode guard;
  const int64_t rows = state.range(0);
  const int64_t cols = state.range(1);
  const at::Tensor w0 = random_normal({rows, cols}, 7, kSynthInitStd);
  const at::Tensor h0 = make_hessian(cols);
  const SparsityPattern p = SparsityPattern::parse(pattern, 0.5);
  for (auto _ : state) {
    state.PauseTiming();
    at::Tensor w = w0.clone();
    at::Tensor h = h0.clone();
    state.ResumeTiming();
    benchmark::DoNotOptimize(sparsegpt_prune(w, h, p, 128, 0.01).data_ptr());
  }
}

// The column sweep alone (every block, then the update of the columns after it), with the
// reference's ATen ops or the CPU kernel, from a prepared H^-1 factor. GFLOP/s counts the
// in-block updates (rows x cols x blocksize) and the updates after each block (~rows x cols^2).
void BM_SparseGptSweep(benchmark::State& state, const char* pattern, bool kernel) {
  configure_threads();
  c10::InferenceMode guard;
  const int64_t rows = state.range(0);
  const int64_t cols = state.range(1);
  const int64_t blocksize = 128;
  const at::Tensor w0 = random_normal({rows, cols}, 7, kSynthInitStd);
  at::Tensor h = make_hessian(cols);
  h.diagonal().add_(0.01 * at::mean(at::diag(h)));
  const at::Tensor hinv = at::linalg_cholesky(at::cholesky_inverse(at::linalg_cholesky(h)), /*upper=*/true);
  const SparsityPattern p = SparsityPattern::parse(pattern, 0.5);
  for (auto _ : state) {
    state.PauseTiming();
    at::Tensor w = w0.clone();
    state.ResumeTiming();
    for (int64_t i1 = 0; i1 < cols; i1 += blocksize) {
      const int64_t i2 = std::min(i1 + blocksize, cols);
      at::Tensor err;
      if (kernel) {
        sweep_block_cpu(w, hinv, i1, i2, p, &err);
      } else {
        sweep_block_aten(w, hinv, i1, i2, p, &err);
      }
      w.slice(1, i2).sub_(err.matmul(hinv.slice(0, i1, i2).slice(1, i2)));
    }
    benchmark::DoNotOptimize(w.data_ptr());
  }
  const double flop = static_cast<double>(rows) * cols * blocksize + static_cast<double>(rows) * cols * (cols - blocksize);
  state.counters["GFLOP/s"] = benchmark::Counter(flop, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

// Accumulating H for one 2048-token sequence: the per-sample cost in the stats pass.
void BM_HessianAccumulate(benchmark::State& state) {
  configure_threads();
  c10::InferenceMode guard;
  const int64_t cols = state.range(0);
  at::Tensor h = at::zeros({cols, cols}, at::kFloat);
  const at::Tensor x = random_normal({1, 2048, cols}, 9);
  int64_t n = 0;
  for (auto _ : state) add_hessian_batch(h, &n, x);
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * 2048 * cols * cols, benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
}

BENCHMARK_CAPTURE(BM_SparseGPT, unstructured, "unstructured")
    ->Args({4096, 4096})
    ->Args({4096, 11008})
    ->Iterations(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_SparseGPT, 2_4, "2:4")->Args({4096, 4096})->Iterations(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_SparseGptSweep, unstructured_aten, "unstructured", false)
    ->Args({2048, 2048})->Args({2048, 5632})->Iterations(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_SparseGptSweep, unstructured_kernel, "unstructured", true)
    ->Args({2048, 2048})->Args({2048, 5632})->Iterations(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_SparseGptSweep, 2_4_aten, "2:4", false)->Args({2048, 2048})->Iterations(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_SparseGptSweep, 2_4_kernel, "2:4", true)->Args({2048, 2048})->Iterations(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_HessianAccumulate)->Arg(4096)->Arg(11008)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace pipeprune::bench

BENCHMARK_MAIN();
