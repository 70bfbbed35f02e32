// The upper Cholesky factor U of H^-1 (U^T U = H^-1) that SparseGPT's column sweep reads, two
// ways.
//
//  - kReference: the published code's cholesky(cholesky_inverse(cholesky(H)), upper) in LAPACK,
//    on one OpenBLAS thread (its threaded potrf/potri round differently at each thread count,
//    core/common/blas_threads.h). 4/3 n^3 multiply-adds on one core: for a down_proj Hessian
//    (n = 5632) most of SparseGPT's prune phase.
//  - kBlocked: the same U by another route. With P the reversal permutation and L' the lower
//    Cholesky factor of P H P, H = (P L' P)(P L' P)^T with P L' P upper, so the upper factor of
//    H^-1 is U = P L'^-1 P: one Cholesky and one triangular inverse, 2/3 n^3 multiply-adds, in
//    256-wide blocks whose work is GEMMs on every BLAS thread (OpenBLAS's GEMM rounds alike at
//    every thread count where its kernels do: not the Haswell kernels it picks on an AMD EPYC,
//    tests/support/gemm_threads.h) and LAPACK only on the diagonal blocks, on one thread. Its
//    bits are not the reference's: U differs in the last bits, which SparseGPT's
//    threshold-and-compensate sweep turns into different mask entries (measured on 4 layers of
//    the llama-1b shape: 95.0% agreement, as between two LibTorch builds; docs/performance.md).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace pipeprune {

enum class HinvFactor { kReference, kBlocked };

// "reference" | "blocked"; ConfigError naming --hinv-factor otherwise.
HinvFactor parse_hinv_factor(const std::string& name);
const char* hinv_factor_name(HinvFactor factor);

// U for a symmetric positive definite fp32 H (already damped). Throws c10::Error when a
// Cholesky step finds H not positive definite; the blocked route also when U is not finite.
at::Tensor inverse_upper_factor(const at::Tensor& hessian, HinvFactor factor);

}  // namespace pipeprune
