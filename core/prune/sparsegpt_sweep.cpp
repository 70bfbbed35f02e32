#include "core/prune/sparsegpt_sweep.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "core/prune/selection.h"

namespace pipeprune {
namespace {

// Unstructured: the block's mask is chosen once, before the sweep, from the block as it
// arrives (the reference's tmp = W1^2 / diag(Hinv1)^2 and its sorted threshold).
at::Tensor unstructured_block_mask(const at::Tensor& w1, const at::Tensor& hinv1, double sparsity) {
  const at::Tensor tmp = w1.pow(2).div(at::diag(hinv1).reshape({1, -1}).pow(2));
  const auto index = static_cast<int64_t>(static_cast<double>(tmp.numel()) * sparsity);
  return at::le(tmp, sorted_value_at(tmp, index).to(tmp.device()));
}

// N:M: the mask of columns [i, i + m) is chosen when the sweep reaches column i, from the
// columns as the earlier columns' errors left them.
at::Tensor group_mask(const at::Tensor& w1, const at::Tensor& hinv1, int64_t i, const SparsityPattern& pattern) {
  const int64_t end = i + pattern.m;
  const at::Tensor tmp =
      w1.slice(1, i, end).pow(2).div(at::diag(hinv1).slice(0, i, end).reshape({1, -1}).pow(2));
  return topk_lowest_per_group(tmp, pattern.n, pattern.m);
}

// Columns [begin, end) of rows [row_begin, row_end) of a contiguous block w [rows, count]:
// the reference's q = w (0 where masked), err = (w - q) / d, W1[:, i:] -= err * Hinv1[i, i:],
// one product and one subtraction per weight, each rounded as fp32 (this file is compiled
// without FMA contraction, so the bits are the reference's). Column i itself is not updated:
// its q was taken already and nothing reads it again.
__attribute__((target_clones("avx512f", "avx2", "default"))) void sweep_rows(
    float* w, const float* h, const bool* mask, float* q, float* err, int64_t count, int64_t begin,
    int64_t end, int64_t row_begin, int64_t row_end) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    float* wr = w + r * count;
    const bool* mr = mask + r * count;
    float* qr = q + r * count;
    float* er = err + r * count;
    for (int64_t i = begin; i < end; ++i) {
      const float wi = wr[i];
      const float qi = mr[i] ? 0.0f : wi;
      qr[i] = qi;
      const float e = (wi - qi) / h[i * count + i];
      er[i] = e;
      const float* hi = h + i * count;
      for (int64_t j = i + 1; j < count; ++j) wr[j] -= e * hi[j];
    }
  }
}

}  // namespace

at::Tensor sweep_block_aten(at::Tensor& weight, const at::Tensor& hinv, int64_t i1, int64_t i2,
                            const SparsityPattern& pattern, at::Tensor* err_out) {
  const int64_t count = i2 - i1;
  at::Tensor w1 = weight.slice(1, i1, i2).clone();
  at::Tensor q1 = at::zeros_like(w1);
  at::Tensor err1 = at::zeros_like(w1);
  const at::Tensor hinv1 = hinv.slice(0, i1, i2).slice(1, i1, i2);
  at::Tensor mask1 = pattern.is_nm() ? at::zeros(w1.sizes(), w1.options().dtype(at::kBool))
                                     : unstructured_block_mask(w1, hinv1, pattern.sparsity);
  for (int64_t i = 0; i < count; ++i) {
    const at::Tensor w = w1.select(1, i);
    const at::Tensor d = hinv1.select(0, i).select(0, i);
    if (pattern.is_nm() && i % pattern.m == 0) {
      mask1.slice(1, i, i + pattern.m).copy_(group_mask(w1, hinv1, i, pattern));
    }
    at::Tensor q = w.clone();
    q.masked_fill_(mask1.select(1, i), 0);
    q1.select(1, i).copy_(q);
    const at::Tensor err = at::sub(w, q).div(d);
    w1.slice(1, i).sub_(err.unsqueeze(1).matmul(hinv1.select(0, i).slice(0, i).unsqueeze(0)));
    err1.select(1, i).copy_(err);
  }
  weight.slice(1, i1, i2).copy_(q1);
  *err_out = err1;
  return mask1;
}

at::Tensor sweep_block_cpu(at::Tensor& weight, const at::Tensor& hinv, int64_t i1, int64_t i2,
                           const SparsityPattern& pattern, at::Tensor* err_out) {
  const int64_t rows = weight.size(0);
  const int64_t count = i2 - i1;
  at::Tensor w1 = weight.slice(1, i1, i2).contiguous().clone();
  const at::Tensor hinv1 = hinv.slice(0, i1, i2).slice(1, i1, i2).contiguous();
  at::Tensor q1 = at::empty_like(w1);
  at::Tensor err1 = at::empty_like(w1);
  at::Tensor mask1 = pattern.is_nm() ? at::zeros(w1.sizes(), w1.options().dtype(at::kBool))
                                     : unstructured_block_mask(w1, hinv1, pattern.sparsity);
  // Unstructured: one sweep over the whole block; N:M: one per group, each after its mask.
  const int64_t group = pattern.is_nm() ? pattern.m : count;
  // Rows are independent, so the partition over threads cannot change a bit.
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, count * group));
  for (int64_t begin = 0; begin < count; begin += group) {
    const int64_t end = std::min(begin + group, count);
    if (pattern.is_nm()) mask1.slice(1, begin, end).copy_(group_mask(w1, hinv1, begin, pattern));
    at::parallel_for(0, rows, grain, [&](int64_t row_begin, int64_t row_end) {
      sweep_rows(w1.data_ptr<float>(), hinv1.data_ptr<float>(), mask1.data_ptr<bool>(), q1.data_ptr<float>(),
                 err1.data_ptr<float>(), count, begin, end, row_begin, row_end);
    });
  }
  weight.slice(1, i1, i2).copy_(q1);
  *err_out = err1;
  return mask1;
}

}  // namespace pipeprune
