// The three LinearPruner implementations behind make_linear_pruner.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <cstdint>
#include <memory>

#include "core/common/error.h"
#include "core/prune/calibration_stats.h"
#include "core/prune/pruner.h"

namespace pipeprune {
namespace {

void check_weight(const at::Tensor& weight, int64_t rows, int64_t cols) {
  PIPEPRUNE_CHECK(weight.dim() == 2 && weight.size(0) == rows && weight.size(1) == cols &&
                      weight.scalar_type() == at::kFloat,
                  Error,
                  "prune: expected an fp32 weight [" << rows << ", " << cols << "], got "
                                                     << weight.sizes() << " "
                                                     << weight.scalar_type());
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
    weight.masked_fill_(mask, 0);
    return mask;
  }
  int64_t bytes_statistics() const override { return 0; }
  void release() override {}
  std::unique_ptr<LinearPruner> clone_for(int64_t rows) const override {
    return std::make_unique<MagnitudePruner>(options_, rows, cols_);
  }

 private:
  PruneOptions options_;
  int64_t rows_;
  int64_t cols_;
};

class WandaPruner final : public LinearPruner {
 public:
  WandaPruner(const PruneOptions& options, int64_t rows, int64_t cols, c10::Device device)
      : options_(options), rows_(rows), cols_(cols) {
    c10::InferenceMode guard;
    scaler_row_ = at::zeros({cols}, at::TensorOptions().dtype(at::kFloat).device(device));
  }
  bool needs_calibration() const override { return true; }
  void add_batch(const at::Tensor& input) override {
    PIPEPRUNE_CHECK(scaler_row_.defined(), Error, "Wanda add_batch after release()");
    add_wanda_batch(scaler_row_, &n_samples_, input);
  }
  at::Tensor prune(at::Tensor& weight) override {
    check_weight(weight, rows_, cols_);
    PIPEPRUNE_CHECK(scaler_row_.defined() && n_samples_ > 0, Error,
                    "Wanda prune() needs calibration inputs: call add_batch first");
    c10::InferenceMode guard;
    at::Tensor mask = wanda_mask(weight, scaler_row_, options_.pattern, options_.use_variant);
    weight.masked_fill_(mask, 0);
    return mask;
  }
  int64_t bytes_statistics() const override {
    return scaler_row_.defined() ? scaler_row_.nbytes() : 0;
  }
  void release() override { scaler_row_ = at::Tensor(); }
  std::unique_ptr<LinearPruner> clone_for(int64_t rows) const override {
    PIPEPRUNE_CHECK(scaler_row_.defined(), Error, "Wanda clone_for after release()");
    c10::InferenceMode guard;
    return std::unique_ptr<WandaPruner>(new WandaPruner(options_, rows, cols_, scaler_row_.clone(), n_samples_));
  }

 private:
  // clone_for: the statistics given, already accumulated over n_samples.
  WandaPruner(const PruneOptions& options, int64_t rows, int64_t cols, at::Tensor statistics, int64_t n_samples)
      : options_(options), rows_(rows), cols_(cols), scaler_row_(std::move(statistics)), n_samples_(n_samples) {}

  PruneOptions options_;
  int64_t rows_;
  int64_t cols_;
  at::Tensor scaler_row_;
  int64_t n_samples_ = 0;
};

class SparseGptPruner final : public LinearPruner {
 public:
  SparseGptPruner(const PruneOptions& options, int64_t rows, int64_t cols, c10::Device device)
      : options_(options), rows_(rows), cols_(cols) {
    c10::InferenceMode guard;
    hessian_ = at::zeros({cols, cols}, at::TensorOptions().dtype(at::kFloat).device(device));
  }
  bool needs_calibration() const override { return true; }
  void add_batch(const at::Tensor& input) override {
    PIPEPRUNE_CHECK(hessian_.defined(), Error, "SparseGPT add_batch after prune() or release()");
    add_hessian_batch(hessian_, &n_samples_, input);
  }
  at::Tensor prune(at::Tensor& weight) override {
    check_weight(weight, rows_, cols_);
    PIPEPRUNE_CHECK(hessian_.defined() && n_samples_ > 0, Error,
                    "SparseGPT prune() needs calibration inputs: call add_batch first");
    // The reference consumes H (del self.H); dropping ours early keeps the peak at H + Hinv.
    at::Tensor hessian = std::move(hessian_);
    hessian_ = at::Tensor();
    return sparsegpt_prune(weight, hessian, options_.pattern, options_.blocksize,
                           options_.percdamp);
  }
  int64_t bytes_statistics() const override { return hessian_.defined() ? hessian_.nbytes() : 0; }
  void release() override { hessian_ = at::Tensor(); }
  std::unique_ptr<LinearPruner> clone_for(int64_t rows) const override {
    PIPEPRUNE_CHECK(hessian_.defined(), Error, "SparseGPT clone_for after prune() or release()");
    c10::InferenceMode guard;
    return std::unique_ptr<SparseGptPruner>(new SparseGptPruner(options_, rows, cols_, hessian_.clone(), n_samples_));
  }

 private:
  // clone_for: the statistics given, already accumulated over n_samples.
  SparseGptPruner(const PruneOptions& options, int64_t rows, int64_t cols, at::Tensor statistics, int64_t n_samples)
      : options_(options), rows_(rows), cols_(cols), hessian_(std::move(statistics)), n_samples_(n_samples) {}

  PruneOptions options_;
  int64_t rows_;
  int64_t cols_;
  at::Tensor hessian_;
  int64_t n_samples_ = 0;
};

void check_options(const PruneOptions& options, int64_t rows, int64_t cols) {
  PIPEPRUNE_CHECK(rows > 0 && cols > 0, Error,
                  "make_linear_pruner: empty linear [" << rows << ", " << cols << "]");
  const SparsityPattern& pattern = options.pattern;
  PIPEPRUNE_CHECK(!options.use_variant ||
                      (options.method == PruneMethod::kWanda && !pattern.is_nm()),
                  ConfigError,
                  "--use-variant applies to --method wanda with unstructured sparsity only");
  if (!pattern.is_nm()) {
    PIPEPRUNE_CHECK(std::isfinite(pattern.sparsity) && pattern.sparsity >= 0.0 &&
                        pattern.sparsity < 1.0,
                    ConfigError, "--sparsity " << pattern.sparsity << " is outside [0, 1)");
  }
  pattern.check_columns(cols, "a linear with " + std::to_string(cols) + " input columns");
  if (options.method == PruneMethod::kSparseGPT) {
    PIPEPRUNE_CHECK(options.blocksize >= 1, ConfigError,
                    "--blocksize " << options.blocksize << " must be at least 1");
    PIPEPRUNE_CHECK(std::isfinite(options.percdamp) && options.percdamp >= 0.0, ConfigError,
                    "--percdamp " << options.percdamp << " must be a finite fraction >= 0");
    PIPEPRUNE_CHECK(!pattern.is_nm() || options.blocksize % pattern.m == 0, ConfigError,
                    "--blocksize " << options.blocksize << " is not a multiple of M=" << pattern.m
                                   << " of --pattern " << pattern.to_string());
  }
}

}  // namespace

std::unique_ptr<LinearPruner> make_linear_pruner(const PruneOptions& options, int64_t rows,
                                                 int64_t cols, c10::Device device) {
  check_options(options, rows, cols);
  switch (options.method) {
    case PruneMethod::kMagnitude:
      return std::make_unique<MagnitudePruner>(options, rows, cols);
    case PruneMethod::kWanda:
      return std::make_unique<WandaPruner>(options, rows, cols, device);
    case PruneMethod::kSparseGPT:
      return std::make_unique<SparseGptPruner>(options, rows, cols, device);
  }
  PIPEPRUNE_FAIL(Error, "make_linear_pruner: unknown method");
}

}  // namespace pipeprune
