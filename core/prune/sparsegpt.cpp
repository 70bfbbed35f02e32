// SparseGPT (IST-DASLab/sparsegpt fasterprune), with the reference's ATen ops in its order.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/common/blas_threads.h"
#include "core/common/error.h"
#include "core/prune/pruner.h"
#include "core/prune/selection.h"

namespace pipeprune {
namespace {

void check_arguments(const at::Tensor& weight, const at::Tensor& hessian,
                     const SparsityPattern& pattern, int64_t blocksize, double percdamp) {
  PIPEPRUNE_CHECK(weight.dim() == 2 && weight.numel() > 0 && weight.scalar_type() == at::kFloat,
                  Error,
                  "sparsegpt_prune: weight must be a non-empty 2-D fp32 tensor, got "
                      << weight.sizes() << " " << weight.scalar_type());
  const int64_t cols = weight.size(1);
  PIPEPRUNE_CHECK(hessian.dim() == 2 && hessian.size(0) == cols && hessian.size(1) == cols &&
                      hessian.scalar_type() == at::kFloat,
                  Error,
                  "sparsegpt_prune: Hessian " << hessian.sizes() << " does not match weight "
                                              << weight.sizes());
  validate_sparsegpt_settings(pattern, blocksize, percdamp);
  if (pattern.is_nm()) pattern.check_columns(cols, "weight");
}

// Dead inputs, damping and the upper Cholesky factor of H^-1, as the reference computes them.
// Returns the dead-column mask [cols].
at::Tensor prepare_hessian(at::Tensor& hessian, at::Tensor& weight, double percdamp) {
  const at::Tensor dead = at::eq(at::diag(hessian), 0);
  hessian.diagonal().masked_fill_(dead, 1);
  weight.masked_fill_(dead.reshape({1, -1}), 0);
  const at::Tensor damp = at::mean(at::diag(hessian)).mul(percdamp);
  hessian.diagonal().add_(damp);
  return dead;
}

at::Tensor inverse_upper_cholesky(const at::Tensor& hessian, double percdamp) {
  // OpenBLAS's threaded potrf/potri round differently at each thread count; one thread makes
  // the result independent of --threads and of the world size (blas_threads.h).
  const BlasThreadsGuard one_thread(1);
  try {
    at::Tensor h = at::linalg_cholesky(hessian);
    h = at::cholesky_inverse(h);
    return at::linalg_cholesky(h, /*upper=*/true);
  } catch (const c10::Error&) {
    PIPEPRUNE_FAIL(Error, "SparseGPT: the Hessian of this linear is not positive definite after "
                          "damping (percdamp="
                              << percdamp
                              << "); raise --percdamp or check the calibration inputs for NaN/Inf");
  }
}

// One block of columns [i1, i2): select, quantize to zero with error feedback inside the block.
// Returns the block's mask; writes the pruned block into weight and Err1 into err_out.
at::Tensor prune_block(at::Tensor& weight, const at::Tensor& hinv, int64_t i1, int64_t i2,
                       const SparsityPattern& pattern, at::Tensor* err_out) {
  const int64_t count = i2 - i1;
  at::Tensor w1 = weight.slice(1, i1, i2).clone();
  at::Tensor q1 = at::zeros_like(w1);
  at::Tensor err1 = at::zeros_like(w1);
  const at::Tensor hinv1 = hinv.slice(0, i1, i2).slice(1, i1, i2);
  at::Tensor mask1;
  if (!pattern.is_nm()) {
    const at::Tensor tmp = w1.pow(2).div(at::diag(hinv1).reshape({1, -1}).pow(2));
    const auto index = static_cast<int64_t>(static_cast<double>(tmp.numel()) * pattern.sparsity);
    mask1 = at::le(tmp, sorted_value_at(tmp, index).to(tmp.device()));
  } else {
    mask1 = at::zeros(w1.sizes(), w1.options().dtype(at::kBool));
  }
  for (int64_t i = 0; i < count; ++i) {
    const at::Tensor w = w1.select(1, i);
    const at::Tensor d = hinv1.select(0, i).select(0, i);
    if (pattern.is_nm() && i % pattern.m == 0) {
      const int64_t end = i + pattern.m;
      const at::Tensor tmp = w1.slice(1, i, end).pow(2).div(
          at::diag(hinv1).slice(0, i, end).reshape({1, -1}).pow(2));
      mask1.slice(1, i, end).copy_(topk_lowest_per_group(tmp, pattern.n, pattern.m));
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

}  // namespace

at::Tensor sparsegpt_prune(at::Tensor& weight, at::Tensor& hessian, const SparsityPattern& pattern,
                           int64_t blocksize, double percdamp) {
  check_arguments(weight, hessian, pattern, blocksize, percdamp);
  c10::InferenceMode guard;
  const int64_t cols = weight.size(1);
  const at::Tensor dead = prepare_hessian(hessian, weight, percdamp);
  const at::Tensor hinv = inverse_upper_cholesky(hessian, percdamp);
  at::Tensor mask = at::zeros(weight.sizes(), weight.options().dtype(at::kBool));
  for (int64_t i1 = 0; i1 < cols; i1 += blocksize) {
    const int64_t i2 = std::min(i1 + blocksize, cols);
    at::Tensor err1;
    mask.slice(1, i1, i2).copy_(prune_block(weight, hinv, i1, i2, pattern, &err1));
    // Lazy update of the columns after the block.
    weight.slice(1, i2).sub_(err1.matmul(hinv.slice(0, i1, i2).slice(1, i2)));
  }
  // Dead inputs were zeroed before selection; they are pruned whether or not selected.
  mask.logical_or_(dead.reshape({1, -1}));
  return mask;
}

}  // namespace pipeprune
