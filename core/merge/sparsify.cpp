#include "core/merge/sparsify.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "core/common/error.h"

namespace pipeprune {
namespace {

// Elements per task of the parallel loops, and per partial sum of the L1 norms: the partials are
// fixed by the index alone, so the fp64 sums do not depend on the thread count.
constexpr int64_t kGrain = int64_t{1} << 16;

// ---- magnitude trim ------------------------------------------------------------------------

// The bits of |x| as an unsigned key: for non-negative floats the bit order is the value order,
// and every NaN (any payload) maps to one key above +inf, so NaNs tie with each other and sort
// as the largest magnitude, as torch.sort's descending order puts them first. Branch-free.
inline uint32_t magnitude_key(float x) {
  uint32_t bits = 0;
  std::memcpy(&bits, &x, sizeof(bits));
  return std::min(bits & 0x7FFFFFFFu, 0x7F800001u);
}

// Counts of bucket(key) over all keys; bucket returns -1 for keys outside the histogram.
// Integer counts merged under a lock: the total does not depend on the order of the merges.
template <typename Bucket>
std::vector<int64_t> key_histogram(const float* x, int64_t n, int64_t n_buckets, const Bucket& bucket) {
  std::vector<int64_t> total(static_cast<size_t>(n_buckets), 0);
  std::mutex mutex;
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> local(static_cast<size_t>(n_buckets), 0);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = bucket(magnitude_key(x[i]));
      if (b >= 0) ++local[static_cast<size_t>(b)];
    }
    std::lock_guard<std::mutex> lock(mutex);
    for (size_t b = 0; b < total.size(); ++b) total[b] += local[b];
  });
  return total;
}

// The bucket holding the k-th largest key (k >= 1, 1-based) and the count of keys in the
// buckets above it.
std::pair<int64_t, int64_t> bucket_of_kth_largest(const std::vector<int64_t>& counts, int64_t k) {
  int64_t above = 0;
  for (int64_t b = static_cast<int64_t>(counts.size()) - 1; b >= 0; --b) {
    if (above + counts[static_cast<size_t>(b)] >= k) return {b, above};
    above += counts[static_cast<size_t>(b)];
  }
  PIPEPRUNE_FAIL(Error, "magnitude_keep_mask: the histogram holds fewer than " << k << " keys");
}

// The flat index of the `rank`-th (1-based) key equal to `key`, counting in index order: counts
// per fixed chunk in parallel, then one chunk scanned.
int64_t index_of_nth_equal(const float* x, int64_t n, uint32_t key, int64_t rank) {
  const int64_t n_chunks = (n + kGrain - 1) / kGrain;
  std::vector<int64_t> counts(static_cast<size_t>(n_chunks), 0);
  at::parallel_for(0, n_chunks, 1, [&](int64_t chunk_begin, int64_t chunk_end) {
    for (int64_t c = chunk_begin; c < chunk_end; ++c) {
      int64_t count = 0;
      for (int64_t i = c * kGrain, end = std::min(n, (c + 1) * kGrain); i < end; ++i) {
        count += magnitude_key(x[i]) == key;
      }
      counts[static_cast<size_t>(c)] = count;
    }
  });
  for (int64_t c = 0; c < n_chunks; ++c) {
    if (rank > counts[static_cast<size_t>(c)]) {
      rank -= counts[static_cast<size_t>(c)];
      continue;
    }
    for (int64_t i = c * kGrain;; ++i) {
      if (magnitude_key(x[i]) == key && --rank == 0) return i;
    }
  }
  PIPEPRUNE_FAIL(Error, "magnitude_keep_mask: fewer keys equal the threshold than counted");
}

// The mask of k (1 <= k < n) largest magnitudes of a contiguous fp32 host array.
at::Tensor host_magnitude_mask(const float* x, int64_t n, int64_t k) {
  // The threshold key in two radix levels of 16 bits: the top bits (keys < 2^31, so 2^15
  // buckets), then the low bits of the keys in the top bucket. Exact however many keys tie.
  const std::vector<int64_t> high = key_histogram(x, n, int64_t{1} << 15, [](uint32_t key) {
    return static_cast<int64_t>(key >> 16);
  });
  const auto [high_bucket, above_high] = bucket_of_kth_largest(high, k);
  const std::vector<int64_t> low = key_histogram(x, n, int64_t{1} << 16, [hb = high_bucket](uint32_t key) {
    return static_cast<int64_t>(key >> 16) == hb ? static_cast<int64_t>(key & 0xFFFFu) : int64_t{-1};
  });
  const auto [low_bucket, above_low] = bucket_of_kth_largest(low, k - above_high);
  const uint32_t threshold = static_cast<uint32_t>((high_bucket << 16) | low_bucket);
  const int64_t n_greater = above_high + above_low;
  const int64_t n_equal_kept = k - n_greater;
  // The stable order keeps the first n_equal_kept ties in index order: entries equal to the
  // threshold up to the last such index are kept.
  const int64_t last_equal = n_equal_kept == low[static_cast<size_t>(low_bucket)]
                                 ? n - 1
                                 : index_of_nth_equal(x, n, threshold, n_equal_kept);
  at::Tensor mask = at::empty({n}, at::TensorOptions().dtype(at::kBool));
  bool* out = mask.data_ptr<bool>();
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const uint32_t key = magnitude_key(x[i]);
      out[i] = (key > threshold) | ((key == threshold) & (i <= last_equal));
    }
  });
  return mask;
}

// ---- DARE drop -------------------------------------------------------------------------------

constexpr uint64_t kGoldenGamma = 0x9E3779B97F4A7C15ull;

// splitmix64's output function (Steele, Lea, Flood 2014): a bijective 64-bit mix.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// ---- rescale ---------------------------------------------------------------------------------

// md = delta * keep on host arrays; with sums, the L1 norms of delta and md in fp64, one partial
// per kGrain elements added in index order.
void host_masked(const float* delta, const bool* keep, float* md, int64_t n, double* before, double* after) {
  const int64_t n_chunks = (n + kGrain - 1) / kGrain;
  std::vector<double> partial_before(before ? static_cast<size_t>(n_chunks) : 0);
  std::vector<double> partial_after(before ? static_cast<size_t>(n_chunks) : 0);
  at::parallel_for(0, n_chunks, 1, [&](int64_t chunk_begin, int64_t chunk_end) {
    for (int64_t c = chunk_begin; c < chunk_end; ++c) {
      const int64_t begin = c * kGrain;
      const int64_t end = std::min(n, begin + kGrain);
      // delta * 0.0f, not 0: a dropped negative entry is -0 and a NaN stays NaN, as with
      // mergekit's float mask.
      for (int64_t i = begin; i < end; ++i) md[i] = delta[i] * static_cast<float>(keep[i]);
      if (before == nullptr) continue;
      double sum_before = 0.0;
      double sum_after = 0.0;
      for (int64_t i = begin; i < end; ++i) {
        sum_before += std::fabs(static_cast<double>(delta[i]));
        sum_after += std::fabs(static_cast<double>(md[i]));
      }
      partial_before[static_cast<size_t>(c)] = sum_before;
      partial_after[static_cast<size_t>(c)] = sum_after;
    }
  });
  if (before == nullptr) return;
  *before = 0.0;
  *after = 0.0;
  for (int64_t c = 0; c < n_chunks; ++c) {
    *before += partial_before[static_cast<size_t>(c)];
    *after += partial_after[static_cast<size_t>(c)];
  }
}

}  // namespace

at::Tensor magnitude_keep_mask(const at::Tensor& delta, double density) {
  PIPEPRUNE_CHECK(delta.is_floating_point(), Error,
                  "magnitude_keep_mask: delta must be a float tensor, not " << delta.scalar_type());
  const auto bool_options = delta.options().dtype(at::kBool);
  const int64_t n = delta.numel();
  if (density >= 1.0) return at::ones(delta.sizes(), bool_options);
  // int(density * numel) in Python: the double product, truncated toward zero.
  const int64_t k = static_cast<int64_t>(density * static_cast<double>(n));
  if (k <= 0) return at::zeros(delta.sizes(), bool_options);
  if (k >= n) return at::ones(delta.sizes(), bool_options);
  // The selection runs on a host fp32 copy (mergekit's magnitudes are fp32 too: w.float()).
  const at::Tensor host = delta.detach().to(at::kCPU, at::kFloat).contiguous();
  const at::Tensor mask = host_magnitude_mask(host.data_ptr<float>(), n, k);
  return mask.reshape(delta.sizes()).to(delta.device());
}

uint64_t dare_stream(const std::string& tensor_name, int model_index) {
  uint64_t hash = 0xCBF29CE484222325ull;  // FNV-1a, 64 bits
  for (const char c : tensor_name) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 0x100000001B3ull;
  }
  const uint64_t index = static_cast<uint64_t>(static_cast<int64_t>(model_index));
  return mix64(hash ^ mix64(index + kGoldenGamma));
}

at::Tensor dare_keep_mask(at::IntArrayRef shape, double density, uint64_t seed, uint64_t stream) {
  const auto options = at::TensorOptions().dtype(at::kBool);
  if (density >= 1.0) return at::ones(shape, options);
  at::Tensor mask = at::empty(shape, options);
  const int64_t n = mask.numel();
  // u = (h >> 11) * 2^-53 < density  <=>  (h >> 11) < ceil(density * 2^53): the comparison in
  // integers, exact (the scaling by 2^53 is exact in double).
  const uint64_t threshold =
      density <= 0.0 ? 0 : static_cast<uint64_t>(std::ceil(std::ldexp(density, 53)));
  // The key names the (seed, stream) pair; element i is splitmix64 at counter i + 1 of it.
  const uint64_t key = mix64(mix64(seed + kGoldenGamma) ^ stream);
  bool* out = mask.data_ptr<bool>();
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const uint64_t h = mix64(key + static_cast<uint64_t>(i + 1) * kGoldenGamma);
      out[i] = (h >> 11) < threshold;
    }
  });
  return mask;
}

at::Tensor rescaled_masked(const at::Tensor& delta, const at::Tensor& keep, Rescale rescale, double density,
                           double* factor) {
  PIPEPRUNE_CHECK(delta.scalar_type() == at::kFloat, Error,
                  "rescaled_masked: delta must be fp32, not " << delta.scalar_type());
  PIPEPRUNE_CHECK(keep.scalar_type() == at::kBool && keep.sizes() == delta.sizes(), Error,
                  "rescaled_masked: keep must be a bool tensor of delta's shape");
  at::Tensor md;
  double before = 0.0;
  double after = 0.0;
  const bool l1 = rescale == Rescale::kL1;
  if (delta.is_cpu()) {
    const at::Tensor d = delta.contiguous();
    const at::Tensor k = keep.to(at::kCPU).contiguous();
    md = at::empty_like(d, at::MemoryFormat::Contiguous);
    host_masked(d.data_ptr<float>(), k.data_ptr<bool>(), md.data_ptr<float>(), d.numel(), l1 ? &before : nullptr,
                l1 ? &after : nullptr);
  } else {
    md = at::mul(delta, keep.to(delta.device()));
    if (l1) {
      before = at::abs(delta).sum(at::kDouble).item<double>();
      after = at::abs(md).sum(at::kDouble).item<double>();
    }
  }
  double applied = 1.0;
  if (rescale == Rescale::kInvDensity) {
    // fp32 true division by float(density), as torch's CPU `res / density`. A 0-dim tensor, not
    // a Scalar, because CUDA would multiply by the reciprocal of a Scalar instead.
    md.div_(at::scalar_tensor(static_cast<double>(static_cast<float>(density)), md.options()));
    applied = 1.0 / density;
  } else if (l1 && !(before < 1e-7 || after < 1e-7)) {
    // mergekit's eps test, then one fp32 factor for the whole tensor.
    const float scale = static_cast<float>(before / after);
    md.mul_(static_cast<double>(scale));
    applied = scale;
  }
  if (factor != nullptr) *factor = applied;
  return md;
}

}  // namespace pipeprune
