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
#include "core/prune/sparsegpt_sweep.h"

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

}  // namespace

at::Tensor sparsegpt_prune(at::Tensor& weight, at::Tensor& hessian, const SparsityPattern& pattern,
                           int64_t blocksize, double percdamp) {
  check_arguments(weight, hessian, pattern, blocksize, percdamp);
  c10::InferenceMode guard;
  const int64_t cols = weight.size(1);
  const at::Tensor dead = prepare_hessian(hessian, weight, percdamp);
  const at::Tensor hinv = inverse_upper_cholesky(hessian, percdamp);
  at::Tensor mask = at::zeros(weight.sizes(), weight.options().dtype(at::kBool));
  const bool cpu = weight.is_cpu();  // CUDA keeps the reference's ATen ops
  for (int64_t i1 = 0; i1 < cols; i1 += blocksize) {
    const int64_t i2 = std::min(i1 + blocksize, cols);
    at::Tensor err1;
    mask.slice(1, i1, i2).copy_(cpu ? sweep_block_cpu(weight, hinv, i1, i2, pattern, &err1)
                                    : sweep_block_aten(weight, hinv, i1, i2, pattern, &err1));
    // Lazy update of the columns after the block.
    weight.slice(1, i2).sub_(err1.matmul(hinv.slice(0, i1, i2).slice(1, i2)));
  }
  // Dead inputs were zeroed before selection; they are pruned whether or not selected.
  mask.logical_or_(dead.reshape({1, -1}));
  return mask;
}

}  // namespace pipeprune
