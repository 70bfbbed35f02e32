// StatisticMode::kBlockSums (--parallel samples): block sums taken in any blocking and added in
// order give one statistic whose mean matches the reference running mean within float
// rounding, and the pruner prunes from it as from the running mean.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include "core/common/error.h"
#include "core/prune/calibration_stats.h"
#include "core/prune/pruner.h"

namespace pipeprune {
namespace {

PruneOptions options_for(PruneMethod method) {
  PruneOptions options;
  options.method = method;
  options.pattern = SparsityPattern::parse("unstructured", 0.5);
  return options;
}

TEST(BlockSums, HessianAndWandaMeansMatchTheRunningMean) {
  at::manual_seed(3);
  const at::Tensor inputs = at::randn({6, 16, 8});
  at::Tensor hessian = at::zeros({8, 8});
  at::Tensor scaler = at::zeros({8});
  int64_t n_h = 0;
  int64_t n_w = 0;
  add_hessian_batch(hessian, &n_h, inputs);
  add_wanda_batch(scaler, &n_w, inputs);
  // Two blocks of three samples, summed, then the mean.
  at::Tensor h_sum = at::zeros({8, 8});
  at::Tensor w_sum = at::zeros({8});
  for (int64_t block = 0; block < 2; ++block) {
    at::Tensor h_block = at::zeros({8, 8});
    at::Tensor w_block = at::zeros({8});
    add_hessian_sum(h_block, inputs.slice(0, 3 * block, 3 * block + 3));
    add_wanda_sum(w_block, inputs.slice(0, 3 * block, 3 * block + 3));
    h_sum.add_(h_block);
    w_sum.add_(w_block);
  }
  hessian_mean_of_sum(h_sum, 6);
  wanda_mean_of_sum(w_sum, 6);
  EXPECT_TRUE(at::allclose(h_sum, hessian, 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(w_sum, scaler, 1e-5, 1e-6));
  // A naive mean in double: 2 x^T x and ||x_j||^2 over the six sequences.
  const at::Tensor x = inputs.to(at::kDouble);
  EXPECT_TRUE(at::allclose(h_sum.to(at::kDouble), 2 * at::einsum("btc,btd->cd", {x, x}) / 6, 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(w_sum.to(at::kDouble), x.pow(2).sum(at::IntArrayRef{0, 1}) / 6, 1e-5, 1e-6));
}

TEST(BlockSums, PrunerTakesBlocksAndPrunesFromTheReducedSum) {
  c10::InferenceMode guard;  // as the pipeline runs: the pruner's tensors are inference tensors
  at::manual_seed(5);
  const at::Tensor inputs = at::randn({4, 32, 16});
  const at::Tensor weight = at::randn({8, 16});
  for (PruneMethod method : {PruneMethod::kWanda, PruneMethod::kSparseGPT}) {
    auto reference = make_linear_pruner(options_for(method), 8, 16, c10::Device(c10::kCPU));
    reference->add_batch(inputs);
    at::Tensor w_reference = weight.clone();
    const at::Tensor mask_reference = reference->prune(w_reference);

    auto blocks = make_linear_pruner(options_for(method), 8, 16, c10::Device(c10::kCPU), StatisticMode::kBlockSums);
    blocks->add_batch(inputs.slice(0, 0, 2));
    at::Tensor total = blocks->take_block_sum();
    blocks->add_batch(inputs.slice(0, 2, 4));
    total.add_(blocks->take_block_sum());
    EXPECT_TRUE(blocks->take_block_sum().eq(0).all().item<bool>()) << "a taken block starts again from zero";
    blocks->set_statistic_from_sum(total, 4);
    at::Tensor w_blocks = weight.clone();
    const at::Tensor mask_blocks = blocks->prune(w_blocks);
    EXPECT_TRUE(mask_blocks.equal(mask_reference)) << prune_method_name(method);
    EXPECT_TRUE(at::allclose(w_blocks, w_reference, 1e-4, 1e-5)) << prune_method_name(method);
  }
}

TEST(BlockSums, RunningMeanPrunerRefusesBlockCalls) {
  auto pruner = make_linear_pruner(options_for(PruneMethod::kWanda), 8, 16, c10::Device(c10::kCPU));
  EXPECT_THROW(pruner->take_block_sum(), Error);
}

}  // namespace
}  // namespace pipeprune
