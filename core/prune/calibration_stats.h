// Running calibration statistics of one linear, accumulated exactly as the reference wrappers
// do (locuslab/wanda WrappedGPT.add_batch and SparseGPT.add_batch): every sequence of the
// input counts as one sample and is added on its own, in order, so the result does not depend
// on how the caller batched the sequences.
//
// The caller owns the tensors; these functions update them in place on their device (inputs
// on another device are copied there). Not thread-safe for the same statistics.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace pipeprune {

// scaler_row ([cols] fp32): the running mean over sequences of ||x_j||^2 (squared L2 norm of
// input column j over the sequence's tokens). input: [batch, tokens, cols] or [tokens, cols].
// n_samples: sequences seen so far; advanced by the batch size.
void add_wanda_batch(at::Tensor& scaler_row, int64_t* n_samples, const at::Tensor& input);

// hessian ([cols, cols] fp32): the running mean over sequences of 2 x^T x, x = [tokens, cols].
void add_hessian_batch(at::Tensor& hessian, int64_t* n_samples, const at::Tensor& input);

}  // namespace pipeprune
