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

// Sample-parallel calibration (--parallel samples) keeps plain sums instead of running means:
// each sequence's term is added on its own, in order, with no rescaling, so sums over blocks of
// samples can be added across ranks in a fixed order (Transport::reduce_sum_into) and turned
// into the mean once, whatever the number of ranks. The mean differs from the running mean's by
// float rounding only (a different order of the same operations).
// sum ([cols] fp32) += ||x_j||^2 per sequence; the statistic is sum / n (wanda_mean_of_sum).
void add_wanda_sum(at::Tensor& sum, const at::Tensor& input);
// sum ([cols, cols] fp32) += x^T x per sequence; the statistic is 2 sum / n.
void add_hessian_sum(at::Tensor& sum, const at::Tensor& input);
// The statistics from sums over n_samples sequences, in place.
void wanda_mean_of_sum(at::Tensor& sum, int64_t n_samples);
void hessian_mean_of_sum(at::Tensor& sum, int64_t n_samples);

}  // namespace pipeprune
