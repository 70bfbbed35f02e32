#include "core/prune/selection.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "core/common/error.h"

namespace pipeprune {
namespace {

// An unsigned key ordered as torch.sort / kthvalue order floats (ascending, NaN last), equal
// exactly for values that sort as ties (-0 == +0, every NaN alike). Selecting on integers
// avoids the NaN branches of a float comparator.
inline uint32_t order_key(float x) {
  if (std::isnan(x)) return 0xFFFFFFFFu;
  uint32_t bits = 0;
  const float canonical = x + 0.0f;  // -0 -> +0
  std::memcpy(&bits, &canonical, sizeof(bits));
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

at::Tensor host_floats(const at::Tensor& scores) {
  return scores.to(at::kCPU, at::kFloat).contiguous();
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
  std::vector<uint32_t> keys(static_cast<size_t>(numel));
  for (int64_t i = 0; i < numel; ++i) keys[i] = order_key(data[i]);
  std::nth_element(keys.begin(), keys.begin() + index, keys.end());
  // Any element with the selected key is the value at that sorted position.
  const uint32_t target = keys[index];
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
  at::Tensor mask = at::zeros({rows, cols}, at::TensorOptions().dtype(at::kBool));
  if (k > 0 && rows > 0) {
    const float* in = host.data_ptr<float>();
    bool* out = mask.data_ptr<bool>();
    for_each_row(rows, cols, [&](int64_t begin, int64_t end) {
      std::vector<uint32_t> keys(cols);
      std::vector<uint32_t> buffer(cols);
      for (int64_t r = begin; r < end; ++r) {
        const float* row = in + r * cols;
        bool* row_mask = out + r * cols;
        for (int64_t j = 0; j < cols; ++j) keys[j] = order_key(row[j]);
        buffer = keys;
        std::nth_element(buffer.begin(), buffer.begin() + (k - 1), buffer.end());
        const uint32_t kth = buffer[k - 1];
        int64_t below = 0;
        for (int64_t j = 0; j < cols; ++j) below += keys[j] < kth ? 1 : 0;
        // Ties of the k-th value go in column order, as a stable sort leaves them.
        int64_t ties_left = k - below;
        for (int64_t j = 0; j < cols; ++j) {
          const bool tie = keys[j] == kth && ties_left > 0;
          ties_left -= tie ? 1 : 0;
          row_mask[j] = keys[j] < kth || tie;
        }
      }
    });
  }
  return mask.to(scores.device());
}

at::Tensor topk_lowest_per_group(const at::Tensor& scores, int64_t n, int64_t m) {
  PIPEPRUNE_CHECK(scores.dim() == 2, Error, "topk_lowest_per_group: scores must be 2-D");
  const int64_t rows = scores.size(0);
  const int64_t cols = scores.size(1);
  PIPEPRUNE_CHECK(m >= 1 && n >= 1 && n <= m && cols % m == 0, Error,
                  "topk_lowest_per_group: bad n=" << n << " m=" << m << " for " << cols
                                                  << " columns");
  const at::Tensor host = host_floats(scores);
  at::Tensor mask = at::zeros({rows, cols}, at::TensorOptions().dtype(at::kBool));
  const float* in = host.data_ptr<float>();
  bool* out = mask.data_ptr<bool>();
  // The same element type, comparator and algorithm choice as ATen's topk_impl_loop, so ties
  // land where topk puts them.
  using Elem = std::pair<float, int64_t>;
  const auto less = [](const Elem& x, const Elem& y) -> bool {
    return (!std::isnan(x.first) && std::isnan(y.first)) || (x.first < y.first);
  };
  const bool use_partial_sort = n * 64 <= m;
  for_each_row(rows, cols, [&](int64_t begin, int64_t end) {
    std::vector<Elem> queue(m);
    for (int64_t r = begin; r < end; ++r) {
      for (int64_t g = 0; g < cols; g += m) {
        const float* group = in + r * cols + g;
        bool* group_mask = out + r * cols + g;
        for (int64_t j = 0; j < m; ++j) queue[j] = Elem(group[j], j);
        if (use_partial_sort) {
          std::partial_sort(queue.begin(), queue.begin() + n, queue.end(), less);
        } else {
          std::nth_element(queue.begin(), queue.begin() + (n - 1), queue.end(), less);
        }
        for (int64_t j = 0; j < n; ++j) group_mask[queue[j].second] = true;
      }
    }
  });
  return mask.to(scores.device());
}

}  // namespace pipeprune
