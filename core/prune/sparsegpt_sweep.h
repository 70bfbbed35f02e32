// SparseGPT's sweep over one block of columns (the inner loop of fasterprune): select the
// block's mask, then for each column zero the pruned weights and spread their error onto the
// block's later columns. Two implementations with the same bits:
// - sweep_block_aten: the reference's ATen ops in its order, on any device (the CUDA path);
// - sweep_block_cpu: fp32 CPU tensors, one tight loop per row over all of a group's columns,
//   rows spread over ATen's thread pool. The reference spends ~10 ATen calls per column,
//   each allocating a [rows, cols-left] outer product; this touches each weight once per
//   column in cache.
// Internal to core/prune (sparsegpt.cpp picks one; tests compare them).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "core/prune/sparsity_pattern.h"

namespace pipeprune {

// Prunes columns [i1, i2) of weight ([rows, cols] fp32) in place, given hinv (the upper
// Cholesky factor of H^-1, [cols, cols]). Returns the block's bool mask [rows, i2 - i1] and
// writes the block's scaled errors (the reference's Err1) to *err_out, for the caller's
// update of the columns after the block.
at::Tensor sweep_block_aten(at::Tensor& weight, const at::Tensor& hinv, int64_t i1, int64_t i2,
                            const SparsityPattern& pattern, at::Tensor* err_out);
at::Tensor sweep_block_cpu(at::Tensor& weight, const at::Tensor& hinv, int64_t i1, int64_t i2,
                           const SparsityPattern& pattern, at::Tensor* err_out);

}  // namespace pipeprune
