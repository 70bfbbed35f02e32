// SparseGPT's H^-1 factor, by the reference's LAPACK chain or by blocks (hinv_factor.h).
#include "core/prune/hinv_factor.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <vector>

#include "core/common/blas_threads.h"
#include "core/common/error.h"

namespace pipeprune {
namespace {

// Wide enough that the GEMMs run near the machine's rate, narrow enough that the one-thread
// LAPACK work on the diagonal blocks (n/256 of them, 256^3/2 each) stays a few percent.
constexpr int64_t kBlock = 256;

at::Tensor reference_factor(const at::Tensor& hessian) {
  const BlasThreadsGuard one_thread(1);
  at::Tensor h = at::linalg_cholesky(hessian);
  h = at::cholesky_inverse(h);
  return at::linalg_cholesky(h, /*upper=*/true);
}

at::Tensor view(const at::Tensor& a, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  return a.slice(0, r0, r1).slice(1, c0, c1);
}

at::Tensor blocked_factor(const at::Tensor& hessian) {
  const int64_t n = hessian.size(0);
  // Right-looking blocked Cholesky of P H P in place (lower triangle), keeping each diagonal
  // block's inverse for the panel below it and for the triangular inverse after.
  at::Tensor a = hessian.flip({0, 1}).contiguous();
  std::vector<at::Tensor> diagonal_inverse;
  for (int64_t k0 = 0; k0 < n; k0 += kBlock) {
    const int64_t k1 = std::min(k0 + kBlock, n);
    at::Tensor akk = view(a, k0, k1, k0, k1);
    {
      const BlasThreadsGuard one_thread(1);
      const at::Tensor lkk = at::linalg_cholesky(akk);
      diagonal_inverse.push_back(at::linalg_solve_triangular(lkk, at::eye(k1 - k0, a.options()), /*upper=*/false));
      akk.copy_(lkk);
    }
    if (k1 == n) break;
    at::Tensor panel = view(a, k1, n, k0, k1);
    panel.copy_(at::matmul(panel, diagonal_inverse.back().t()));  // L_pk = A_pk L_kk^-T
    // The trailing matrix's lower triangle, one block column at a time.
    for (int64_t j0 = k1; j0 < n; j0 += kBlock) {
      const int64_t j1 = std::min(j0 + kBlock, n);
      view(a, j0, n, j0, j1).sub_(at::matmul(view(a, j0, n, k0, k1), view(a, j0, j1, k0, k1).t()));
    }
  }
  a.tril_();
  // L^-1 by block rows: X_ii = L_ii^-1, X_i,<i = -L_ii^-1 (L_i,<i X_<i,<i).
  at::Tensor inverse = at::zeros_like(a);
  for (int64_t i0 = 0, b = 0; i0 < n; i0 += kBlock, ++b) {
    const int64_t i1 = std::min(i0 + kBlock, n);
    view(inverse, i0, i1, i0, i1).copy_(diagonal_inverse[b]);
    if (i0 == 0) continue;
    const at::Tensor x = at::matmul(view(a, i0, i1, 0, i0), view(inverse, 0, i0, 0, i0));
    view(inverse, i0, i1, 0, i0).copy_(at::matmul(diagonal_inverse[b], x).neg_());
  }
  at::Tensor upper = inverse.flip({0, 1}).contiguous();
  TORCH_CHECK(at::isfinite(upper).all().item<bool>(), "the blocked H^-1 factor is not finite");
  return upper;
}

}  // namespace

HinvFactor parse_hinv_factor(const std::string& name) {
  if (name == "reference") return HinvFactor::kReference;
  if (name == "blocked") return HinvFactor::kBlocked;
  PIPEPRUNE_FAIL(ConfigError, "--hinv-factor must be reference (the published LAPACK chain, the default) or "
                              "blocked (all threads, different last bits), got '"
                                  << name << "'");
}

const char* hinv_factor_name(HinvFactor factor) {
  return factor == HinvFactor::kBlocked ? "blocked" : "reference";
}

at::Tensor inverse_upper_factor(const at::Tensor& hessian, HinvFactor factor) {
  // Off the CPU there is no OpenBLAS thread count to keep the bits from: the reference chain.
  if (factor == HinvFactor::kReference || !hessian.is_cpu()) return reference_factor(hessian);
  return blocked_factor(hessian);
}

}  // namespace pipeprune
