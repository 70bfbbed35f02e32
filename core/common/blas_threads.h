// OpenBLAS's own thread pool, apart from ATen's (OpenBLAS ignores at::set_num_threads).
//
// Its multithreaded LAPACK kernels (potrf, potri: the Cholesky chain of SparseGPT) split their
// work by thread count, so their results change in the last bits with it; its GEMM does not
// with its SkylakeX kernels (Intel Xeon; Debian's LibTorch 1.13 + OpenBLAS 0.3.21), but does
// with the Haswell kernels it picks on an AMD EPYC (tests/support/gemm_threads.h). Running the
// Cholesky chain on one OpenBLAS thread makes a prune's bytes independent of --threads where
// the GEMM is.
// Process-wide state: call from the thread that drives the computation, not concurrently.
#pragma once

namespace pipeprune {

// No-op when the BLAS in use is not OpenBLAS.
void set_blas_threads(int threads);
// OpenBLAS's thread count, or 0 when the BLAS is not OpenBLAS.
int blas_threads();

// Sets OpenBLAS to `threads` for its lifetime and restores the previous count after.
class BlasThreadsGuard {
 public:
  explicit BlasThreadsGuard(int threads);
  ~BlasThreadsGuard();
  BlasThreadsGuard(const BlasThreadsGuard&) = delete;
  BlasThreadsGuard& operator=(const BlasThreadsGuard&) = delete;

 private:
  int previous_;
};

}  // namespace pipeprune
