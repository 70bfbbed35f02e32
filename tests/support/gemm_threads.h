// Whether this machine's BLAS GEMM gives the same bits at 1 and 4 OpenBLAS threads. OpenBLAS
// 0.3.21 does with its SkylakeX kernels (Intel Xeon, measured 2026-12-02) and does not with the
// Haswell kernels it picks on an AMD EPYC (every shape tried differed, also 2 against 3
// threads; measured 2026-12-02). Where it does not, no GEMM-based result can be the same at
// every thread count, and the tests of that property skip with this reason.
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

inline const char* kGemmThreadsSkip =
    "this machine's OpenBLAS GEMM rounds differently at 1 and 4 threads (tests/support/gemm_threads.h), so no "
    "GEMM-based result is the same at every thread count here";

}  // namespace pipeprune::testing
