// A prototype of a faster Wanda unstructured mask, to size the fix proposed for issue 6's
// "Wanda mask <= 3x a read+write pass" target. Not used by the pipeline.
//
// core/prune's wanda_mask materializes the score matrix |W| * sqrt(s) (a full fp32 copy of W,
// fresh pages every call), then selects per row with nth_element over all columns. The
// prototype fuses score, order key and selection per row: one pass computes each score and a
// histogram of its key's top bits, the k-th smallest is found inside the one bucket that holds
// it (a few hundred candidates), and a second pass over the row (still in cache) writes the
// mask. Same scores bit for bit (fp32 abs, sqrt and multiply are exactly rounded), same ties
// rule (lowest columns first): the benchmark checks the masks are equal before timing.
#include <benchmark/benchmark.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "benchmarks/bench_util.h"
#include "core/prune/pruner.h"
#include "core/prune/sparsity_pattern.h"

namespace pipeprune::bench {
namespace {

constexpr int64_t kRows = 4096;
constexpr int64_t kCols = 11008;
constexpr int kBucketBits = 12;

// Ascending float order as unsigned keys (scores are >= 0 or NaN; NaN sorts last).
inline uint32_t order_key(float x) {
  if (std::isnan(x)) return 0xFFFFFFFFu;
  uint32_t bits = 0;
  const float canonical = x + 0.0f;
  std::memcpy(&bits, &canonical, sizeof(bits));
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

// Scores are >= 0 or NaN, so every key has its top bit set: the bucket is the next 12 bits
// (exponent and 4 mantissa bits), monotone in the key.
inline uint32_t bucket_of(uint32_t key) { return (key >> 19) & ((1u << kBucketBits) - 1); }

void select_row(const float* w, const float* sqrt_s, int64_t cols, int64_t k, uint32_t* keys,
                uint32_t* histograms, std::vector<uint32_t>& candidates, bool* mask) {
  // Four interleaved histograms: runs of equal buckets would otherwise serialize on one counter.
  constexpr int64_t kBuckets = int64_t{1} << kBucketBits;
  std::fill(histograms, histograms + 4 * kBuckets, 0u);
  int64_t j = 0;
  for (; j < cols; ++j) {
    const uint32_t key = order_key(std::fabs(w[j]) * sqrt_s[j]);
    keys[j] = key;
    ++histograms[(j & 3) * kBuckets + bucket_of(key)];
  }
  // The bucket holding the k-th smallest key, and how many keys lie below it.
  int64_t below = 0;
  uint32_t bucket = 0;
  auto count = [&](uint32_t b) {
    return int64_t{histograms[b]} + histograms[kBuckets + b] + histograms[2 * kBuckets + b] + histograms[3 * kBuckets + b];
  };
  while (below + count(bucket) < k) below += count(bucket++);
  candidates.clear();
  for (j = 0; j < cols; ++j) {
    if (bucket_of(keys[j]) == bucket) candidates.push_back(keys[j]);
  }
  std::nth_element(candidates.begin(), candidates.begin() + (k - 1 - below), candidates.end());
  const uint32_t kth = candidates[static_cast<size_t>(k - 1 - below)];
  int64_t strictly_below = below;
  int64_t equal = 0;
  for (const uint32_t key : candidates) {
    strictly_below += key < kth ? 1 : 0;
    equal += key == kth ? 1 : 0;
  }
  // Branch-free: every key <= kth; then, in the rare row with more ties of the k-th than
  // needed, drop the excess from the highest columns (ties go to the lowest columns).
  for (j = 0; j < cols; ++j) mask[j] = keys[j] <= kth;
  int64_t excess = strictly_below + equal - k;
  for (j = cols - 1; excess > 0; --j) {
    if (keys[j] == kth) {
      mask[j] = false;
      --excess;
    }
  }
}

at::Tensor fused_wanda_mask(const at::Tensor& weight, const at::Tensor& scaler, double sparsity) {
  const int64_t rows = weight.size(0), cols = weight.size(1);
  const int64_t k = static_cast<int64_t>(static_cast<double>(cols) * sparsity);
  const at::Tensor sqrt_s = at::sqrt(scaler).contiguous();
  at::Tensor mask = at::empty({rows, cols}, at::kBool);
  if (k == 0) return mask.zero_();
  const float* w = weight.data_ptr<float>();
  const float* s = sqrt_s.data_ptr<float>();
  bool* out = mask.data_ptr<bool>();
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    std::vector<uint32_t> keys(static_cast<size_t>(cols));
    std::vector<uint32_t> histograms(4 << kBucketBits);
    std::vector<uint32_t> candidates;
    candidates.reserve(static_cast<size_t>(cols));
    for (int64_t r = begin; r < end; ++r) {
      select_row(w + r * cols, s, cols, k, keys.data(), histograms.data(), candidates, out + r * cols);
    }
  });
  return mask;
}

const at::Tensor& weight() {
  static const at::Tensor w = random_normal({kRows, kCols}, 1, kSynthInitStd);
  return w;
}

const at::Tensor& scaler() {
  static const at::Tensor s = random_normal({kCols}, 2).square().add_(0.1);
  return s;
}

void BM_WandaMaskCurrent(benchmark::State& state) {
  configure_threads();
  const SparsityPattern p = SparsityPattern::parse("unstructured", 0.5);
  for (auto _ : state) benchmark::DoNotOptimize(wanda_mask(weight(), scaler(), p, false).data_ptr());
}

void BM_WandaMaskFusedPrototype(benchmark::State& state) {
  configure_threads();
  c10::InferenceMode guard;
  const at::Tensor expected = wanda_mask(weight(), scaler(), SparsityPattern::parse("unstructured", 0.5), false);
  if (!at::equal(fused_wanda_mask(weight(), scaler(), 0.5), expected)) {
    state.SkipWithError("the prototype's mask differs from wanda_mask");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(fused_wanda_mask(weight(), scaler(), 0.5).data_ptr());
}

void BM_ReadWritePass(benchmark::State& state) {
  configure_threads();
  c10::InferenceMode guard;
  at::Tensor w = weight().clone();
  for (auto _ : state) {
    w.mul_(1.0);
    benchmark::ClobberMemory();
  }
}

BENCHMARK(BM_ReadWritePass)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_WandaMaskCurrent)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_WandaMaskFusedPrototype)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace pipeprune::bench

BENCHMARK_MAIN();
