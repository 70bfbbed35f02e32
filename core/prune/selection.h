// Selections behind the masks, each giving exactly the set that the reference's full sort or
// topk gives (ties included) without sorting whole rows: on CPU a row sort of a 4096x11008
// matrix costs seconds, a selection a fraction of that. The k-th smallest value is found by a
// histogram of the values' top bits and nth_element inside the one bucket that holds it.
//
// Scores are float tensors of any device; CPU kernels do the work (CUDA inputs are copied to
// the host and the mask copied back, because the reference's tie rules are those of the CPU
// kernels). Results are new tensors on the scores' device. Stateless and thread-safe; the
// kernels use ATen's intra-op thread pool.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace pipeprune {

// sort(scores.flatten())[0][index] as a 0-dim float tensor (NaN sorts last).
// Requires 0 <= index < scores.numel().
at::Tensor sorted_value_at(const at::Tensor& scores, int64_t index);

// Bool mask [rows, cols] marking, per row, the first k indices of a stable ascending sort of
// the row: everything below the k-th smallest value, then the lowest-indexed of its ties.
at::Tensor stable_lowest_per_row(const at::Tensor& scores, int64_t k);

// stable_lowest_per_row(|weight| * column_scale, k) without the score matrix: each row's scores
// are made, ranked and masked while the row is in cache (Wanda's selection, column_scale being
// sqrt(scaler_row)). The scores are the fp32 products the reference computes, bit for bit.
// weight [rows, cols] and column_scale [cols] are fp32 on one device.
at::Tensor stable_lowest_scaled_per_row(const at::Tensor& weight, const at::Tensor& column_scale, int64_t k);

// Bool mask [rows, cols] marking, for every group of m consecutive columns of every row, the n
// indices that CPU topk(n, largest=false) returns for that group. Requires cols % m == 0 and
// 1 <= n <= m. Ties fall as libstdc++'s nth_element (or partial_sort when n*64 <= m) leaves
// them, which is what ATen's CPU topk uses: no simpler rule (such as "higher index first")
// reproduces it. Groups of up to 4 columns look that choice up in a table made by running it
// on every pattern of comparisons a group can have.
at::Tensor topk_lowest_per_group(const at::Tensor& scores, int64_t n, int64_t m);

// topk_lowest_per_group(|weight| * column_scale, n, m) without the score matrix (Wanda's N:M
// selection); the same fp32 products. weight [rows, cols] and column_scale [cols] fp32.
at::Tensor topk_lowest_scaled_per_group(const at::Tensor& weight, const at::Tensor& column_scale, int64_t n,
                                        int64_t m);

}  // namespace pipeprune
