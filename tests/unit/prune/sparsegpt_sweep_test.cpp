// The CPU column sweep against the reference's ATen ops (sweep_block_aten), bit for bit: the
// same mask, the same pruned weights and the same errors for every block, pattern, block
// shape and thread count, on inputs with correlated columns like real activations.
#include "core/prune/sparsegpt_sweep.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <string>

namespace pipeprune {
namespace {

// The upper Cholesky factor of the inverse of a damped Hessian of correlated inputs, as
// sparsegpt_prune prepares it.
at::Tensor hinv_of(int64_t cols, uint64_t seed) {
  at::manual_seed(seed);
  const at::Tensor mix = at::eye(cols) + 0.5 * at::randn({cols, cols});
  const at::Tensor x = at::matmul(at::randn({4 * cols, cols}), mix);
  at::Tensor h = 2 * at::matmul(x.t(), x) / x.size(0);
  h.diagonal().add_(0.01 * at::mean(at::diag(h)));
  return at::linalg_cholesky(at::cholesky_inverse(at::linalg_cholesky(h)), /*upper=*/true);
}

bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() == at::kFloat) return at::equal(a.contiguous().view(at::kInt), b.contiguous().view(at::kInt));
  return at::equal(a, b);
}

// Runs every block of a whole sweep both ways (with the reference's update of the later
// columns between blocks) and compares after each block.
void expect_same_sweep(const char* pattern, double sparsity, int64_t rows, int64_t cols, int64_t blocksize,
                       uint64_t seed) {
  const SparsityPattern p = SparsityPattern::parse(pattern, sparsity);
  const at::Tensor hinv = hinv_of(cols, seed);
  at::manual_seed(seed + 100);
  at::Tensor w_aten = at::randn({rows, cols});
  at::Tensor w_cpu = w_aten.clone();
  for (int64_t i1 = 0; i1 < cols; i1 += blocksize) {
    const int64_t i2 = std::min(i1 + blocksize, cols);
    at::Tensor err_aten, err_cpu;
    const at::Tensor mask_aten = sweep_block_aten(w_aten, hinv, i1, i2, p, &err_aten);
    const at::Tensor mask_cpu = sweep_block_cpu(w_cpu, hinv, i1, i2, p, &err_cpu);
    const std::string where = std::string(pattern) + " rows " + std::to_string(rows) + " block " +
                              std::to_string(i1) + " of blocksize " + std::to_string(blocksize);
    ASSERT_TRUE(at::equal(mask_aten, mask_cpu)) << where;
    ASSERT_TRUE(same_bits(err_aten, err_cpu)) << where;
    ASSERT_TRUE(same_bits(w_aten, w_cpu)) << where;
    ASSERT_GT(mask_cpu.sum().item<int64_t>(), 0) << where;
    const at::Tensor update = err_aten.matmul(hinv.slice(0, i1, i2).slice(1, i2));
    w_aten.slice(1, i2).sub_(update);
    w_cpu.slice(1, i2).sub_(update);
  }
}

TEST(SparseGptSweep, Unstructured_SameBitsAsAten) {
  expect_same_sweep("unstructured", 0.5, 37, 256, 128, 1);
  expect_same_sweep("unstructured", 0.7, 64, 96, 32, 2);
  expect_same_sweep("unstructured", 0.5, 5, 40, 16, 3);  // short last block
}

TEST(SparseGptSweep, NM_SameBitsAsAten) {
  expect_same_sweep("2:4", 0.5, 37, 256, 128, 4);
  expect_same_sweep("4:8", 0.5, 19, 128, 64, 5);
  expect_same_sweep("1:4", 0.5, 8, 48, 16, 6);  // short last block
}

TEST(SparseGptSweep, ThreadCount_DoesNotChangeBits) {
  const int threads = at::get_num_threads();
  for (const char* pattern : {"unstructured", "2:4"}) {
    const SparsityPattern p = SparsityPattern::parse(pattern, 0.5);
    const at::Tensor hinv = hinv_of(128, 7);
    at::manual_seed(8);
    const at::Tensor w = at::randn({300, 128});
    at::Tensor one = w.clone(), many = w.clone(), err_one, err_many;
    at::set_num_threads(1);
    const at::Tensor mask_one = sweep_block_cpu(one, hinv, 0, 128, p, &err_one);
    at::set_num_threads(4);
    const at::Tensor mask_many = sweep_block_cpu(many, hinv, 0, 128, p, &err_many);
    EXPECT_TRUE(at::equal(mask_one, mask_many)) << pattern;
    EXPECT_TRUE(same_bits(one, many)) << pattern;
    EXPECT_TRUE(same_bits(err_one, err_many)) << pattern;
  }
  at::set_num_threads(threads);
}

}  // namespace
}  // namespace pipeprune
