// SparseGPT (IST-DASLab/sparsegpt fasterprune), with the reference's ATen ops in its order.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/common/error.h"
#include "core/prune/hinv_factor.h"
#include "core/prune/pruner.h"
#include "core/prune/sparsegpt_sweep.h"

namespace pipeprune {
namespace {

void check_hessian(const at::Tensor& hessian, double percdamp) {
  PIPEPRUNE_CHECK(hessian.dim() == 2 && hessian.size(0) == hessian.size(1) && hessian.numel() > 0 &&
                      hessian.scalar_type() == at::kFloat,
                  Error, "sparsegpt: the Hessian must be a square fp32 matrix, got " << hessian.sizes());
  validate_sparsegpt_settings(SparsityPattern{}, /*blocksize=*/1, percdamp);  // percdamp only
}

void check_weight(const at::Tensor& weight, const SparseGptInverse& inverse, const SparsityPattern& pattern,
                  int64_t blocksize) {
  PIPEPRUNE_CHECK(weight.dim() == 2 && weight.numel() > 0 && weight.scalar_type() == at::kFloat,
                  Error,
                  "sparsegpt_prune: weight must be a non-empty 2-D fp32 tensor, got "
                      << weight.sizes() << " " << weight.scalar_type());
  const int64_t cols = weight.size(1);
  PIPEPRUNE_CHECK(inverse.hinv.dim() == 2 && inverse.hinv.size(0) == cols && inverse.hinv.size(1) == cols, Error,
                  "sparsegpt_prune: Hessian " << inverse.hinv.sizes() << " does not match weight " << weight.sizes());
  validate_sparsegpt_settings(pattern, blocksize, /*percdamp=*/0.0);  // percdamp was the inverse's
  if (pattern.is_nm()) pattern.check_columns(cols, "weight");
}

at::Tensor inverse_upper_cholesky(const at::Tensor& hessian, double percdamp, HinvFactor factor) {
  try {
    return inverse_upper_factor(hessian, factor);
  } catch (const c10::OutOfMemoryError&) {
    throw;  // the device's memory, not the Hessian: the caller's out-of-memory fallback retries
  } catch (const c10::Error& e) {
    // cuSOLVER's workspace or handle can fail to allocate with a plain CUDA error.
    if (std::string(e.what_without_backtrace()).find("out of memory") != std::string::npos) throw;
    PIPEPRUNE_FAIL(Error, "SparseGPT: the Hessian of this linear is not positive definite after "
                          "damping (percdamp="
                              << percdamp
                              << "); raise --percdamp or check the calibration inputs for NaN/Inf");
  }
}

}  // namespace

SparseGptInverse sparsegpt_inverse(at::Tensor& hessian, double percdamp, HinvFactor factor) {
  check_hessian(hessian, percdamp);
  c10::InferenceMode guard;
  // Dead inputs and damping, as the reference applies them, then the factor.
  SparseGptInverse inverse;
  inverse.dead = at::eq(at::diag(hessian), 0);
  hessian.diagonal().masked_fill_(inverse.dead, 1);
  const at::Tensor damp = at::mean(at::diag(hessian)).mul(percdamp);
  hessian.diagonal().add_(damp);
  inverse.hinv = inverse_upper_cholesky(hessian, percdamp, factor);
  return inverse;
}

at::Tensor sparsegpt_prune(at::Tensor& weight, const SparseGptInverse& inverse, const SparsityPattern& pattern,
                           int64_t blocksize) {
  check_weight(weight, inverse, pattern, blocksize);
  c10::InferenceMode guard;
  const int64_t cols = weight.size(1);
  const at::Tensor& hinv = inverse.hinv;
  weight.masked_fill_(inverse.dead.reshape({1, -1}), 0);
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
  mask.logical_or_(inverse.dead.reshape({1, -1}));
  return mask;
}

at::Tensor sparsegpt_prune(at::Tensor& weight, at::Tensor& hessian, const SparsityPattern& pattern,
                           int64_t blocksize, double percdamp) {
  // Settings and shapes are checked before the Hessian is factorised (and modified).
  validate_sparsegpt_settings(pattern, blocksize, percdamp);
  PIPEPRUNE_CHECK(hessian.dim() == 2 && weight.dim() == 2 && hessian.size(0) == weight.size(1), Error,
                  "sparsegpt_prune: Hessian " << hessian.sizes() << " does not match weight " << weight.sizes());
  return sparsegpt_prune(weight, sparsegpt_inverse(hessian, percdamp), pattern, blocksize);
}

}  // namespace pipeprune
