// Whether this machine's BLAS GEMM gives the same bits at 1 and 4 OpenBLAS threads, and whether
// a row of a product has the same bits whatever other rows are computed with it. OpenBLAS
// 0.3.21 does both with its SkylakeX kernels (Intel Xeon, measured 2026-12-02) and neither with
// the Haswell kernels it picks on an AMD EPYC (every shape tried differed, also 2 against 3
// threads, and rows 32..64 of a 64..192-row product differ from the same 32 rows alone even on
// one thread; measured 2026-12-02 and 2026-12-03). Where it does not, no GEMM-based result can
// be the same at every thread count or in every stacking of rows, and the tests of that
// property skip or loosen with these reasons.
#pragma once

#include <ATen/ATen.h>

#include "core/common/blas_threads.h"

namespace pipeprune::testing {

inline bool gemm_same_at_every_thread_count() {
  const int previous = blas_threads();
  at::manual_seed(1);
  const at::Tensor a = at::randn({96, 128}), b = at::randn({128, 256});
  set_blas_threads(1);
  const at::Tensor one = a.matmul(b);
  set_blas_threads(4);
  const at::Tensor four = a.matmul(b);
  set_blas_threads(previous);
  return at::equal(one, four);
}

inline bool gemm_rows_same_in_any_stacking() {
  at::manual_seed(2);
  const at::Tensor a = at::randn({128, 64}), b = at::randn({64, 192});
  return at::equal(a.matmul(b).narrow(0, 32, 32), a.narrow(0, 32, 32).matmul(b));
}

inline const char* kGemmThreadsSkip =
    "this machine's OpenBLAS GEMM rounds differently at 1 and 4 threads (tests/support/gemm_threads.h), so no "
    "GEMM-based result is the same at every thread count here";

inline const char* kGemmRowsReason =
    "this machine's OpenBLAS GEMM rounds a row differently by the rows stacked with it (tests/support/gemm_threads.h)";

}  // namespace pipeprune::testing
