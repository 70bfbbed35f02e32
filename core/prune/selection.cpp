#include "core/prune/selection.h"

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

// An unsigned key ordered as torch.sort / kthvalue order floats (ascending, NaN last), equal
// exactly for values that sort as ties (-0 == +0, every NaN alike). Selecting on integers
// avoids the NaN branches of a float comparator; branch-free, so its loops vectorize.
inline uint32_t order_key(float x) {
  const float canonical = x + 0.0f;  // -0 -> +0
  uint32_t bits = 0;
  std::memcpy(&bits, &canonical, sizeof(bits));
  // Negative: every bit flipped; otherwise the sign bit set.
  const uint32_t flip = static_cast<uint32_t>(static_cast<int32_t>(bits) >> 31) | 0x80000000u;
  // NaN by its bits (exponent all ones, mantissa not 0): an integer test keeps loops vectorized.
  return (bits & 0x7FFFFFFFu) > 0x7F800000u ? 0xFFFFFFFFu : bits ^ flip;
}

at::Tensor host_floats(const at::Tensor& scores) {
  return scores.to(at::kCPU, at::kFloat).contiguous();
}

// The inputs of the *_scaled_* selections: a 2-D fp32 weight and an fp32 scale per column.
void check_scaled(const char* what, const at::Tensor& weight, const at::Tensor& column_scale) {
  PIPEPRUNE_CHECK(weight.dim() == 2 && weight.scalar_type() == at::kFloat, Error,
                  what << ": weight must be a 2-D fp32 tensor");
  PIPEPRUNE_CHECK(column_scale.dim() == 1 && column_scale.size(0) == weight.size(1) &&
                      column_scale.scalar_type() == at::kFloat && column_scale.device() == weight.device(),
                  Error, what << ": column_scale must be fp32 [" << weight.size(1) << "] on the weight's device");
}

// |weight| * column_scale materialized, for devices the fused CPU loops do not serve.
at::Tensor scaled_scores(const at::Tensor& weight, const at::Tensor& column_scale) {
  return at::mul(at::abs(weight), column_scale.reshape({1, -1}));
}

// Keys are ranked first by 12 of their top bits: the k-th smallest lies in one bucket of the
// histogram, and only that bucket's keys (a few percent of a row of weights) need nth_element.
// The bucket is the sign, the exponent and 3 mantissa bits; when every key of a row is >= +0
// or NaN (Wanda's and magnitude's scores), the sign is the same for all and 4 mantissa bits
// are used instead, halving the candidates. Either way the bucket is monotone in the key.
constexpr int kBucketBits = 12;
constexpr int64_t kBuckets = int64_t{1} << kBucketBits;
constexpr uint32_t kNonNegative = 0x80000000u;  // set in the key of every value >= +0 and of NaN
inline uint32_t bucket_of(uint32_t key, int shift) { return (key >> shift) & (kBuckets - 1); }
inline int bucket_shift(uint32_t and_of_keys) { return (and_of_keys & kNonNegative) ? 31 - kBucketBits : 32 - kBucketBits; }

// The bucket holding sorted position `index` of keys counted in `counts`, and how many keys lie
// in the buckets below it.
template <typename Count>
std::pair<uint32_t, int64_t> bucket_at(const Count* counts, int64_t index) {
  uint32_t bucket = 0;
  int64_t below = 0;
  while (below + static_cast<int64_t>(counts[bucket]) <= index) below += counts[bucket++];
  return {bucket, below};
}

// Scratch space of one thread's rows.
struct RowScratch {
  explicit RowScratch(int64_t cols)
      : keys(static_cast<size_t>(cols)), counts(kBuckets), candidates(static_cast<size_t>(cols)) {}
  std::vector<uint32_t> keys;
  std::vector<uint32_t> counts;
  std::vector<uint32_t> candidates;
};

// The row loops, each built for AVX-512, AVX2 and plain x86-64 and picked at run time.
#define PIPEPRUNE_ROW_KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))

// keys[j] = order_key(row[j]); returns the AND of the keys.
PIPEPRUNE_ROW_KERNEL uint32_t keys_of_row(const float* row, int64_t cols, uint32_t* keys) {
  uint32_t and_of_keys = ~0u;
  for (int64_t j = 0; j < cols; ++j) {
    keys[j] = order_key(row[j]);
    and_of_keys &= keys[j];
  }
  return and_of_keys;
}

// keys[j] = order_key(|row[j]| * scale[j]), the reference's abs(W) * sqrt(scaler_row) as one
// exactly rounded fp32 product; returns the AND of the keys.
PIPEPRUNE_ROW_KERNEL uint32_t keys_of_scaled_row(const float* row, const float* scale, int64_t cols,
                                                 uint32_t* keys) {
  uint32_t and_of_keys = ~0u;
  for (int64_t j = 0; j < cols; ++j) {
    keys[j] = order_key(std::fabs(row[j]) * scale[j]);
    and_of_keys &= keys[j];
  }
  return and_of_keys;
}

PIPEPRUNE_ROW_KERNEL void count_buckets(const uint32_t* keys, int64_t cols, int shift, uint32_t* counts) {
  std::fill(counts, counts + kBuckets, 0u);
  for (int64_t j = 0; j < cols; ++j) ++counts[bucket_of(keys[j], shift)];
}

// The keys of one bucket, in column order (branch-free); returns how many.
PIPEPRUNE_ROW_KERNEL int64_t gather_bucket(const uint32_t* keys, int64_t cols, int shift, uint32_t bucket,
                                           uint32_t* out) {
  int64_t n = 0;
  for (int64_t j = 0; j < cols; ++j) {
    out[n] = keys[j];
    n += bucket_of(keys[j], shift) == bucket ? 1 : 0;
  }
  return n;
}

// mask[j] = keys[j] <= kth; returns how many are marked.
PIPEPRUNE_ROW_KERNEL int64_t mark_up_to(const uint32_t* keys, int64_t cols, uint32_t kth, bool* mask) {
  int64_t marked = 0;
  for (int64_t j = 0; j < cols; ++j) {
    const bool low = keys[j] <= kth;
    mask[j] = low;
    marked += low ? 1 : 0;
  }
  return marked;
}

// Marks the first k of a stable ascending sort of one row whose keys are in `scratch.keys`
// (`and_of_keys`: their bitwise AND): every key below the k-th smallest, then its ties from
// the lowest column.
void mask_row_lowest(RowScratch& scratch, uint32_t and_of_keys, int64_t cols, int64_t k, bool* mask) {
  const uint32_t* keys = scratch.keys.data();
  if (k == 0) {
    std::fill(mask, mask + cols, false);
    return;
  }
  const int shift = bucket_shift(and_of_keys);
  count_buckets(keys, cols, shift, scratch.counts.data());
  const auto [bucket, below] = bucket_at(scratch.counts.data(), k - 1);
  uint32_t* candidates = scratch.candidates.data();
  const int64_t n = gather_bucket(keys, cols, shift, bucket, candidates);
  uint32_t* nth = candidates + (k - 1 - below);
  std::nth_element(candidates, nth, candidates + n);
  // In a row with more ties of the k-th than fit, the excess ties are unmarked from the
  // highest column down (a stable sort keeps the lowest).
  const uint32_t kth = *nth;
  int64_t marked = mark_up_to(keys, cols, kth, mask);
  for (int64_t j = cols - 1; marked > k; --j) {
    if (keys[j] == kth) {
      mask[j] = false;
      --marked;
    }
  }
}

// Per-row work in chunks of rows; rows are independent so any split gives the same mask.
template <typename RowFn>
void for_each_row(int64_t rows, int64_t cols, RowFn fn) {
  const int64_t grain = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(cols, 1));
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) { fn(begin, end); });
}

}  // namespace

at::Tensor sorted_value_at(const at::Tensor& scores, int64_t index) {
  PIPEPRUNE_CHECK(index >= 0 && index < scores.numel(), Error,
                  "sorted_value_at: index " << index << " outside a tensor of "
                                            << scores.numel() << " elements");
  if (!scores.is_cpu()) {
    // kthvalue keeps an index copy of the whole tensor; fine on a device, wasteful on the host.
    return std::get<0>(at::kthvalue(scores.flatten().to(at::kFloat), index + 1));
  }
  const at::Tensor host = host_floats(scores);
  const float* data = host.data_ptr<float>();
  const int64_t numel = host.numel();
  // One histogram of the whole tensor (chunks counted in parallel), then the one bucket's keys.
  constexpr int kShift = 32 - kBucketBits;
  std::vector<int64_t> counts(kBuckets, 0);
  std::mutex merge;
  at::parallel_for(0, numel, int64_t{1} << 16, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> local(kBuckets, 0);
    for (int64_t i = begin; i < end; ++i) ++local[bucket_of(order_key(data[i]), kShift)];
    const std::lock_guard<std::mutex> lock(merge);
    for (int64_t b = 0; b < kBuckets; ++b) counts[b] += local[b];
  });
  const auto [bucket, below] = bucket_at(counts.data(), index);
  std::vector<uint32_t> candidates;
  candidates.reserve(static_cast<size_t>(counts[bucket]));
  for (int64_t i = 0; i < numel; ++i) {
    const uint32_t key = order_key(data[i]);
    if (bucket_of(key, kShift) == bucket) candidates.push_back(key);
  }
  const auto nth = candidates.begin() + (index - below);
  std::nth_element(candidates.begin(), nth, candidates.end());
  // Any element with the selected key is the value at that sorted position.
  const uint32_t target = *nth;
  float value = 0;
  for (int64_t i = 0; i < numel; ++i) {
    if (order_key(data[i]) == target) {
      value = data[i];
      break;
    }
  }
  return at::scalar_tensor(value, at::TensorOptions().dtype(at::kFloat));
}

at::Tensor stable_lowest_per_row(const at::Tensor& scores, int64_t k) {
  PIPEPRUNE_CHECK(scores.dim() == 2, Error, "stable_lowest_per_row: scores must be 2-D");
  const int64_t rows = scores.size(0);
  const int64_t cols = scores.size(1);
  PIPEPRUNE_CHECK(k >= 0 && k <= cols, Error,
                  "stable_lowest_per_row: k=" << k << " outside [0, " << cols << "]");
  const at::Tensor host = host_floats(scores);
  at::Tensor mask = at::empty({rows, cols}, at::TensorOptions().dtype(at::kBool));
  const float* in = host.data_ptr<float>();
  bool* out = mask.data_ptr<bool>();
  for_each_row(rows, cols, [&](int64_t begin, int64_t end) {
    RowScratch scratch(cols);
    for (int64_t r = begin; r < end; ++r) {
      const uint32_t and_of_keys = keys_of_row(in + r * cols, cols, scratch.keys.data());
      mask_row_lowest(scratch, and_of_keys, cols, k, out + r * cols);
    }
  });
  return mask.to(scores.device());
}

at::Tensor stable_lowest_scaled_per_row(const at::Tensor& weight, const at::Tensor& column_scale, int64_t k) {
  check_scaled("stable_lowest_scaled_per_row", weight, column_scale);
  const int64_t rows = weight.size(0);
  const int64_t cols = weight.size(1);
  PIPEPRUNE_CHECK(k >= 0 && k <= cols, Error,
                  "stable_lowest_scaled_per_row: k=" << k << " outside [0, " << cols << "]");
  if (!weight.is_cpu()) return stable_lowest_per_row(scaled_scores(weight, column_scale), k);
  const at::Tensor w = weight.contiguous();
  const at::Tensor scale = column_scale.contiguous();
  at::Tensor mask = at::empty({rows, cols}, at::TensorOptions().dtype(at::kBool));
  const float* in = w.data_ptr<float>();
  const float* s = scale.data_ptr<float>();
  bool* out = mask.data_ptr<bool>();
  for_each_row(rows, cols, [&](int64_t begin, int64_t end) {
    RowScratch scratch(cols);
    for (int64_t r = begin; r < end; ++r) {
      const uint32_t and_of_keys = keys_of_scaled_row(in + r * cols, s, cols, scratch.keys.data());
      mask_row_lowest(scratch, and_of_keys, cols, k, out + r * cols);
    }
  });
  return mask;
}

namespace {

// One group through ATen's topk_impl_loop: the same element type, comparator and algorithm
// choice, so ties land where CPU topk(n, largest=false) puts them. The chosen columns end up
// in queue[0, n).
using TopkElem = std::pair<float, int64_t>;
void topk_group(const float* group, int64_t n, int64_t m, std::vector<TopkElem>& queue) {
  const auto less = [](const TopkElem& x, const TopkElem& y) -> bool {
    return (!std::isnan(x.first) && std::isnan(y.first)) || (x.first < y.first);
  };
  for (int64_t j = 0; j < m; ++j) queue[j] = TopkElem(group[j], j);
  if (n * 64 <= m) {
    std::partial_sort(queue.begin(), queue.begin() + n, queue.end(), less);
  } else {
    std::nth_element(queue.begin(), queue.begin() + (n - 1), queue.end(), less);
  }
}

// Groups of at most 4 (2:4, the common case) by table. topk_group only compares, so its choice
// is a function of how the group's values compare pairwise: two bits per pair, "i before j"
// and "j before i" under topk's comparator, which on order keys (NaN largest, -0 == +0) is
// integer "<". Every such pattern is the pattern of some values in {0, ..., m-1}, so running
// topk_group on all m^m of those fills the table with topk's own choices.
constexpr int64_t kMaxTableGroup = 4;

uint32_t comparison_pattern(const uint32_t* keys, int64_t m) {
  uint32_t pattern = 0;
  int bit = 0;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = i + 1; j < m; ++j) {
      pattern |= static_cast<uint32_t>(keys[i] < keys[j]) << bit;
      pattern |= static_cast<uint32_t>(keys[j] < keys[i]) << (bit + 1);
      bit += 2;
    }
  }
  return pattern;
}

// The chosen columns of a group of m <= 4 by its comparison pattern, as bits (column j: bit j).
using GroupTable = std::vector<uint8_t>;

GroupTable make_group_table(int64_t n, int64_t m) {
  GroupTable table(size_t{1} << (m * (m - 1)), 0);
  std::vector<TopkElem> queue(static_cast<size_t>(m));
  std::vector<float> values(static_cast<size_t>(m));
  std::vector<uint32_t> keys(static_cast<size_t>(m));
  int64_t assignments = 1;
  for (int64_t j = 0; j < m; ++j) assignments *= m;
  for (int64_t a = 0; a < assignments; ++a) {
    int64_t digits = a;
    for (int64_t j = 0; j < m; ++j, digits /= m) {
      values[j] = static_cast<float>(digits % m);
      keys[j] = order_key(values[j]);
    }
    topk_group(values.data(), n, m, queue);
    uint8_t chosen = 0;
    for (int64_t j = 0; j < n; ++j) chosen |= static_cast<uint8_t>(1u << queue[j].second);
    table[comparison_pattern(keys.data(), m)] = chosen;
  }
  return table;
}

const GroupTable& group_table(int64_t n, int64_t m) {
  static const auto tables = [] {
    std::vector<GroupTable> all(static_cast<size_t>((kMaxTableGroup + 1) * (kMaxTableGroup + 1)));
    for (int64_t size = 1; size <= kMaxTableGroup; ++size) {
      for (int64_t k = 1; k <= size; ++k) all[static_cast<size_t>(size * (kMaxTableGroup + 1) + k)] = make_group_table(k, size);
    }
    return all;
  }();
  return tables[static_cast<size_t>(m * (kMaxTableGroup + 1) + n)];
}

// The mask [rows, cols] of topk_lowest_per_group over the scores score(r, j) gives.
template <typename ScoreFn>
void topk_mask(int64_t rows, int64_t cols, int64_t n, int64_t m, ScoreFn score, bool* out) {
  if (m <= kMaxTableGroup) {
    const GroupTable& table = group_table(n, m);
    for_each_row(rows, cols, [&](int64_t begin, int64_t end) {
      uint32_t keys[kMaxTableGroup];
      for (int64_t r = begin; r < end; ++r) {
        for (int64_t g = 0; g < cols; g += m) {
          for (int64_t j = 0; j < m; ++j) keys[j] = order_key(score(r, g + j));
          const uint8_t chosen = table[comparison_pattern(keys, m)];
          for (int64_t j = 0; j < m; ++j) out[r * cols + g + j] = (chosen >> j) & 1u;
        }
      }
    });
    return;
  }
  for_each_row(rows, cols, [&](int64_t begin, int64_t end) {
    std::vector<TopkElem> queue(static_cast<size_t>(m));
    std::vector<float> group(static_cast<size_t>(m));
    for (int64_t r = begin; r < end; ++r) {
      std::fill(out + r * cols, out + (r + 1) * cols, false);
      for (int64_t g = 0; g < cols; g += m) {
        for (int64_t j = 0; j < m; ++j) group[j] = score(r, g + j);
        topk_group(group.data(), n, m, queue);
        for (int64_t j = 0; j < n; ++j) out[r * cols + g + queue[j].second] = true;
      }
    }
  });
}

void check_groups(const char* what, int64_t cols, int64_t n, int64_t m) {
  PIPEPRUNE_CHECK(m >= 1 && n >= 1 && n <= m && cols % m == 0, Error,
                  what << ": bad n=" << n << " m=" << m << " for " << cols << " columns");
}

}  // namespace

at::Tensor topk_lowest_per_group(const at::Tensor& scores, int64_t n, int64_t m) {
  PIPEPRUNE_CHECK(scores.dim() == 2, Error, "topk_lowest_per_group: scores must be 2-D");
  const int64_t rows = scores.size(0);
  const int64_t cols = scores.size(1);
  check_groups("topk_lowest_per_group", cols, n, m);
  const at::Tensor host = host_floats(scores);
  at::Tensor mask = at::empty({rows, cols}, at::TensorOptions().dtype(at::kBool));
  const float* in = host.data_ptr<float>();
  topk_mask(rows, cols, n, m, [in, cols](int64_t r, int64_t j) { return in[r * cols + j]; }, mask.data_ptr<bool>());
  return mask.to(scores.device());
}

at::Tensor topk_lowest_scaled_per_group(const at::Tensor& weight, const at::Tensor& column_scale, int64_t n,
                                        int64_t m) {
  check_scaled("topk_lowest_scaled_per_group", weight, column_scale);
  const int64_t rows = weight.size(0);
  const int64_t cols = weight.size(1);
  check_groups("topk_lowest_scaled_per_group", cols, n, m);
  if (!weight.is_cpu()) return topk_lowest_per_group(scaled_scores(weight, column_scale), n, m);
  const at::Tensor w = weight.contiguous();
  const at::Tensor scale = column_scale.contiguous();
  at::Tensor mask = at::empty({rows, cols}, at::TensorOptions().dtype(at::kBool));
  const float* in = w.data_ptr<float>();
  const float* s = scale.data_ptr<float>();
  // The reference's abs(W) * sqrt(scaler_row): one exactly rounded fp32 product.
  topk_mask(rows, cols, n, m, [in, s, cols](int64_t r, int64_t j) { return std::fabs(in[r * cols + j]) * s[j]; },
            mask.data_ptr<bool>());
  return mask;
}

}  // namespace pipeprune
