// Rotary position embedding, transformers' `x * cos + rotate_half(x) * sin`, as one pass on the
// CPU. The ATen expression makes five tensors the size of q (the negated half, the concatenated
// rotation, two products, the sum); this reads x once and writes the result once, rounding each
// product and the sum as ATen's fp32 mul and add do (compiled without FMA contraction), so the
// bits are the same. Measured on a 1B-shaped layer at 512 tokens: 8.1 ms of q and k per sample
// through ATen (docs/performance.md).
#pragma once

#include <ATen/core/Tensor.h>

namespace pipeprune {

// Whether rotate_cpu applies: x a CPU fp32 [B, T, heads, D] with unit stride in D, D even, and
// cos/sin CPU fp32 [T, D]. Elsewhere (CUDA, bf16/fp16 compute, partial rotary) the caller keeps
// the ATen expression.
bool rotate_cpu_applies(const at::Tensor& x, const at::Tensor& cos);

// x * cos + rotate_half(x) * sin with cos/sin broadcast over batch and heads; the result is a
// new contiguous [B, T, heads, D].
at::Tensor rotate_cpu(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace pipeprune
