// The LinearPruner implementations behind make_linear_pruner: magnitude (no statistics), and one
// calibrated pruner for Wanda and SparseGPT, which differ only in the statistic they keep per
// input (a CalibrationStatistic: its shape, how a batch is added, how the mask is made from it).
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/accumulate.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "core/common/error.h"
#include "core/common/shape_text.h"
#include "core/prune/calibration_stats.h"
#include "core/prune/pruner.h"
#include "core/prune/zero_masked.h"

namespace pipeprune {
namespace {

// What prune() makes of the accumulated statistic, read-only from then on, so that the linears
// reading one input share it (clone_for after prune): Wanda's scaler_row as it is, SparseGPT's
// H^-1 factor (`values`) and dead input columns.
struct PreparedStatistic {
  at::Tensor values;
  at::Tensor dead;
};

// What a calibrated method keeps about a linear's input, and how it prunes from it.
struct CalibrationStatistic {
  // The statistic of a linear with `cols` inputs, fp32.
  std::vector<int64_t> (*shape)(int64_t cols);
  // Adds a batch of inputs (core/prune/calibration_stats.h), advancing the sample count.
  void (*accumulate)(at::Tensor& statistic, int64_t* n_samples, const at::Tensor& input);
  // The same terms as plain sums (StatisticMode::kBlockSums), and the statistic from a sum.
  void (*add_to_sum)(at::Tensor& sum, const at::Tensor& input);
  void (*mean_of_sum)(at::Tensor& sum, int64_t n_samples);
  // Makes what pruning reads from the statistic, consuming it.
  PreparedStatistic (*prepare)(at::Tensor statistic, const PruneOptions& options);
  // Prunes `weight` in place and returns the mask.
  at::Tensor (*prune)(at::Tensor& weight, const PreparedStatistic& prepared, const PruneOptions& options);
};

// Wanda: the running mean of ||x_j||^2 per input column (scaler_row).
const CalibrationStatistic kWandaStatistic{
    [](int64_t cols) { return std::vector<int64_t>{cols}; },
    add_wanda_batch,
    add_wanda_sum,
    wanda_mean_of_sum,
    [](at::Tensor scaler_row, const PruneOptions&) { return PreparedStatistic{std::move(scaler_row), {}}; },
    [](at::Tensor& weight, const PreparedStatistic& prepared, const PruneOptions& options) {
      at::Tensor mask = wanda_mask(weight, prepared.values, options.pattern, options.use_variant);
      zero_masked_(weight, mask);
      return mask;
    }};

// SparseGPT: the running mean of 2 x^T x (the Hessian), made into its H^-1 factor.
const CalibrationStatistic kSparseGptStatistic{
    [](int64_t cols) { return std::vector<int64_t>{cols, cols}; },
    add_hessian_batch,
    add_hessian_sum,
    hessian_mean_of_sum,
    [](at::Tensor hessian, const PruneOptions& options) {
      SparseGptInverse inverse = sparsegpt_inverse(hessian, options.percdamp, options.hinv_factor);
      return PreparedStatistic{std::move(inverse.hinv), std::move(inverse.dead)};
    },
    [](at::Tensor& weight, const PreparedStatistic& prepared, const PruneOptions& options) {
      return sparsegpt_prune(weight, SparseGptInverse{prepared.dead, prepared.values}, options.pattern,
                             options.blocksize);
    }};

const CalibrationStatistic* statistic_of(PruneMethod method) {
  switch (method) {
    case PruneMethod::kWanda: return &kWandaStatistic;
    case PruneMethod::kSparseGPT: return &kSparseGptStatistic;
    case PruneMethod::kMagnitude: return nullptr;
  }
  return nullptr;
}

void check_weight(const at::Tensor& weight, int64_t rows, int64_t cols) {
  PIPEPRUNE_CHECK(weight.dim() == 2 && weight.size(0) == rows && weight.size(1) == cols &&
                      weight.scalar_type() == at::kFloat,
                  Error,
                  "prune: expected an fp32 weight " << shape_text({rows, cols}) << ", got " << shape_text(weight.sizes())
                                                    << " " << weight.scalar_type());
}

class MagnitudePruner final : public LinearPruner {
 public:
  MagnitudePruner(const PruneOptions& options, int64_t rows, int64_t cols)
      : options_(options), rows_(rows), cols_(cols) {}
  bool needs_calibration() const override { return false; }
  void add_batch(const at::Tensor&) override {}
  at::Tensor prune(at::Tensor& weight) override {
    check_weight(weight, rows_, cols_);
    c10::InferenceMode guard;
    at::Tensor mask = magnitude_mask(weight, options_.pattern);
    zero_masked_(weight, mask);
    return mask;
  }
  int64_t bytes_statistics() const override { return 0; }
  at::Tensor statistic() const override { return at::Tensor(); }
  void release() override {}
  std::unique_ptr<LinearPruner> clone_for(int64_t rows) const override {
    return std::make_unique<MagnitudePruner>(options_, rows, cols_);
  }
  at::Tensor take_block_sum() override { return at::Tensor(); }
  void set_statistic_from_sum(at::Tensor, int64_t) override {}

 private:
  PruneOptions options_;
  int64_t rows_;
  int64_t cols_;
};

class CalibratedPruner final : public LinearPruner {
 public:
  CalibratedPruner(const PruneOptions& options, int64_t rows, int64_t cols, c10::Device device, StatisticMode mode)
      : CalibratedPruner(options, rows, cols, zero_statistic(options, cols, device), 0) {
    mode_ = mode;
  }

  bool needs_calibration() const override { return true; }

  void add_batch(const at::Tensor& input) override {
    require_statistic("add_batch");
    if (mode_ == StatisticMode::kBlockSums) {
      statistic_kind_.add_to_sum(statistic_, input);
    } else {
      statistic_kind_.accumulate(statistic_, &n_samples_, input);
    }
  }

  at::Tensor take_block_sum() override {
    require_statistic("take_block_sum");
    PIPEPRUNE_CHECK(mode_ == StatisticMode::kBlockSums, Error, "take_block_sum of a running-mean statistic");
    c10::InferenceMode guard;
    at::Tensor sum = std::move(statistic_);
    statistic_ = at::zeros_like(sum);
    return sum;
  }

  void set_statistic_from_sum(at::Tensor sum, int64_t n_samples) override {
    PIPEPRUNE_CHECK(sum.defined() && sum.sizes() == statistic_kind_.shape(cols_), Error,
                    prune_method_name(options_.method) << " set_statistic_from_sum: expected a sum of shape "
                                                       << shape_text(statistic_kind_.shape(cols_)));
    c10::InferenceMode guard;
    statistic_kind_.mean_of_sum(sum, n_samples);
    statistic_ = std::move(sum);
    n_samples_ = n_samples;
  }

  at::Tensor prune(at::Tensor& weight) override {
    check_weight(weight, rows_, cols_);
    c10::InferenceMode guard;
    if (!prepared_.values.defined()) {
      require_statistic("prune");
      PIPEPRUNE_CHECK(n_samples_ > 0, Error,
                      prune_method_name(options_.method) << " prune() needs calibration inputs: call add_batch first");
      // The reference consumes its statistic (del self.H); handing ours over keeps SparseGPT's
      // peak at H + Hinv.
      prepared_ = statistic_kind_.prepare(std::move(statistic_), options_);
      statistic_ = at::Tensor();
    }
    return statistic_kind_.prune(weight, prepared_, options_);
  }

  int64_t bytes_statistics() const override {
    if (statistic_.defined()) return statistic_.nbytes();
    return prepared_.values.defined() ? prepared_.values.nbytes() : 0;
  }
  at::Tensor statistic() const override {
    // In block-sum mode only set_statistic_from_sum() makes it a mean.
    PIPEPRUNE_CHECK(mode_ == StatisticMode::kRunningMean || n_samples_ > 0, Error,
                    "statistic() of a block sum: reduce it first (set_statistic_from_sum)");
    return statistic_;
  }
  void release() override {
    statistic_ = at::Tensor();
    prepared_ = PreparedStatistic{};
  }

  std::unique_ptr<LinearPruner> clone_for(int64_t rows) const override {
    if (prepared_.values.defined()) {  // after prune(): share what it made (read-only)
      auto clone = std::unique_ptr<CalibratedPruner>(new CalibratedPruner(options_, rows, cols_, at::Tensor(), n_samples_));
      clone->prepared_ = prepared_;
      return clone;
    }
    require_statistic("clone_for");
    c10::InferenceMode guard;
    return std::unique_ptr<CalibratedPruner>(new CalibratedPruner(options_, rows, cols_, statistic_.clone(), n_samples_));
  }

 private:
  // The statistic given, already accumulated over n_samples (clone_for), or zeros.
  CalibratedPruner(const PruneOptions& options, int64_t rows, int64_t cols, at::Tensor statistic, int64_t n_samples)
      : options_(options),
        statistic_kind_(*statistic_of(options.method)),
        rows_(rows),
        cols_(cols),
        statistic_(std::move(statistic)),
        n_samples_(n_samples) {}

  static at::Tensor zero_statistic(const PruneOptions& options, int64_t cols, c10::Device device) {
    c10::InferenceMode guard;
    return at::zeros(statistic_of(options.method)->shape(cols), at::TensorOptions().dtype(at::kFloat).device(device));
  }

  void require_statistic(const char* call) const {
    PIPEPRUNE_CHECK(statistic_.defined(), Error,
                    prune_method_name(options_.method) << " " << call << " after prune() or release()");
  }

  PruneOptions options_;
  const CalibrationStatistic& statistic_kind_;
  int64_t rows_;
  int64_t cols_;
  at::Tensor statistic_;
  PreparedStatistic prepared_;  // after prune(), until release()
  int64_t n_samples_ = 0;
  StatisticMode mode_ = StatisticMode::kRunningMean;
};

}  // namespace

std::unique_ptr<LinearPruner> make_linear_pruner(const PruneOptions& options, int64_t rows,
                                                 int64_t cols, c10::Device device, StatisticMode mode) {
  PIPEPRUNE_CHECK(rows > 0 && cols > 0, Error, "make_linear_pruner: empty linear " << shape_text({rows, cols}));
  options.validate();
  options.pattern.check_columns(cols, "a linear with " + std::to_string(cols) + " input columns");
  if (options.method == PruneMethod::kMagnitude) return std::make_unique<MagnitudePruner>(options, rows, cols);
  return std::make_unique<CalibratedPruner>(options, rows, cols, device, mode);
}

int64_t pruner_statistics_bytes(PruneMethod method, int64_t cols) {
  PIPEPRUNE_CHECK(cols >= 0, Error, "pruner_statistics_bytes: negative column count " << cols);
  const CalibrationStatistic* statistic = statistic_of(method);
  return statistic == nullptr ? 0 : c10::multiply_integers(statistic->shape(cols)) * static_cast<int64_t>(sizeof(float));
}

}  // namespace pipeprune
