// Pruners: magnitude, Wanda and SparseGPT, each following the published reference code to the
// letter (see ../shared/REFERENCE_SEMANTICS.md). A pruner sees tensors only: it never knows
// about ranks, files or devices beyond the tensors it is given.
//
// One LinearPruner per linear of a layer. The caller feeds it the linear's input from the
// forward tap (add_batch, once per forward call) and then calls prune() once. Statistics stay
// on the device the pruner was made for. Magnitude keeps none; Wanda and SparseGPT are one
// class that differs only in its statistic (linear_pruner.cpp). Not thread-safe; one caller.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string>

#include "core/prune/prune_options.h"
#include "core/prune/sparsity_pattern.h"

namespace pipeprune {

// How a calibrated pruner accumulates its statistic: the references' running mean (the default
// mode), or plain sums over blocks of samples that the caller reduces across ranks (--parallel
// samples; core/prune/calibration_stats.h).
enum class StatisticMode { kRunningMean, kBlockSums };

class LinearPruner {
 public:
  virtual ~LinearPruner() = default;
  // False for magnitude: the caller may skip the stats pass for it.
  virtual bool needs_calibration() const = 0;
  // input: [batch, tokens, cols] or [tokens, cols], any float dtype. Each sequence of the batch
  // counts as one calibration sample and is accumulated one at a time, in order, so the result
  // does not depend on how samples were batched.
  virtual void add_batch(const at::Tensor& input) = 0;
  // Prunes `weight` ([rows, cols], fp32) in place (SparseGPT also updates the kept entries) and
  // returns the mask of pruned entries (bool, true = pruned). Consumes the statistics.
  virtual at::Tensor prune(at::Tensor& weight) = 0;
  // Bytes of statistics this pruner holds (cols floats for Wanda, cols^2 for SparseGPT).
  virtual int64_t bytes_statistics() const = 0;
  // The statistic accumulated so far (Wanda: scaler_row [cols]; SparseGPT: H [cols, cols]), as a
  // running mean, before prune() consumes it; undefined for magnitude. Read-only.
  virtual at::Tensor statistic() const = 0;
  // Frees the statistics (after prune()).
  virtual void release() = 0;
  // A pruner of the same method for another linear that reads the same input (q, k and v;
  // gate and up): accumulating the statistics once gives the same bits as accumulating them per
  // linear. Before prune() it holds a copy of the statistics; after prune() (and before
  // release()) it shares what prune() made of them, read-only: SparseGPT's H^-1 factor, so the
  // input's Hessian is factorised once, not once per linear.
  virtual std::unique_ptr<LinearPruner> clone_for(int64_t rows) const = 0;

  // StatisticMode::kBlockSums only. The sum of the terms of the sequences added since the last
  // call (zeros if none), handed over; accumulation starts again from zero.
  virtual at::Tensor take_block_sum() = 0;
  // The statistic from a sum over n_samples sequences (every rank's blocks, reduced): prune()
  // then uses its mean, as the running mean would hold it.
  virtual void set_statistic_from_sum(at::Tensor sum, int64_t n_samples) = 0;
};

std::unique_ptr<LinearPruner> make_linear_pruner(const PruneOptions& options, int64_t rows,
                                                 int64_t cols, c10::Device device,
                                                 StatisticMode mode = StatisticMode::kRunningMean);

// Bytes of statistics a pruner of this method holds for a linear with `cols` inputs
// (for the memory planner, without creating one).
int64_t pruner_statistics_bytes(PruneMethod method, int64_t cols);

// The masks themselves, as pure functions (used by the pruners and tested directly).
// All return bool masks [rows, cols], true = pruned.
at::Tensor magnitude_mask(const at::Tensor& weight, const SparsityPattern& pattern);
// scaler_row: [cols], the running mean of ||x_j||^2 over calibration sequences.
at::Tensor wanda_mask(const at::Tensor& weight, const at::Tensor& scaler_row,
                      const SparsityPattern& pattern, bool use_variant);
// Prunes weight ([rows, cols] fp32) in place given the Hessian H ([cols, cols] fp32, the
// running mean of 2 x^T x; modified: dead channels and damping are applied to it). Returns the
// mask. The same as sparsegpt_prune(weight, sparsegpt_inverse(hessian, percdamp), ...).
at::Tensor sparsegpt_prune(at::Tensor& weight, at::Tensor& hessian, const SparsityPattern& pattern,
                           int64_t blocksize, double percdamp);
// What SparseGPT's sweep reads of a Hessian: its dead input columns (diag == 0, [cols] bool) and
// the upper Cholesky factor of the damped H^-1. Read-only once made, so the linears reading one
// input (q, k, v; gate, up) share one instead of factorising the same matrix again.
struct SparseGptInverse {
  at::Tensor dead;
  at::Tensor hinv;
};
// Modifies `hessian` (dead channels set to 1, damping added) as the reference does. `factor`
// chooses how H^-1's factor is computed (core/prune/hinv_factor.h).
SparseGptInverse sparsegpt_inverse(at::Tensor& hessian, double percdamp,
                                   HinvFactor factor = HinvFactor::kReference);
at::Tensor sparsegpt_prune(at::Tensor& weight, const SparseGptInverse& inverse, const SparsityPattern& pattern,
                           int64_t blocksize);

}  // namespace pipeprune
