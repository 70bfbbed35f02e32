// zero_masked_ must leave the bits weight.masked_fill_(mask, 0) leaves.
#include "core/prune/zero_masked.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <limits>

namespace pipeprune {
namespace {

bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  return at::equal(a.contiguous().view(at::kInt), b.contiguous().view(at::kInt));
}

TEST(ZeroMasked, EqualsMaskedFillBitForBit) {
  at::manual_seed(3);
  // More elements than one parallel chunk, NaN, infinities and signed zeros kept or zeroed.
  at::Tensor weight = at::randn({300, 517});
  weight.view({-1}).index_put_({at::randint(0, 300 * 517, {50})}, std::numeric_limits<float>::quiet_NaN());
  weight.view({-1}).index_put_({at::randint(0, 300 * 517, {50})}, -std::numeric_limits<float>::infinity());
  weight.view({-1}).index_put_({at::randint(0, 300 * 517, {50})}, -0.f);
  for (double p : {0.0, 0.3, 0.5, 1.0}) {
    const at::Tensor mask = at::rand({300, 517}).lt(p);
    at::Tensor expected = weight.clone();
    expected.masked_fill_(mask, 0);
    at::Tensor got = weight.clone();
    zero_masked_(got, mask);
    EXPECT_TRUE(same_bits(got, expected)) << p;
  }
}

TEST(ZeroMasked, NonContiguousWeight_SameAsMaskedFill) {
  at::manual_seed(4);
  const at::Tensor base = at::randn({64, 48});
  const at::Tensor mask = at::rand({48, 64}).lt(0.5);
  at::Tensor got = base.clone().t();
  at::Tensor expected = base.clone().t();
  expected.masked_fill_(mask, 0);
  zero_masked_(got, mask);
  EXPECT_TRUE(same_bits(got, expected));
}

TEST(CountZeros, EqualsEqZeroSum_Fp32Bf16Fp16) {
  at::manual_seed(5);
  at::Tensor weight = at::randn({300, 517});
  weight.masked_fill_(at::rand({300, 517}).lt(0.4), 0);
  weight.view({-1}).index_put_({at::randint(0, 300 * 517, {50})}, -0.f);
  weight.view({-1}).index_put_({at::randint(0, 300 * 517, {50})}, std::numeric_limits<float>::quiet_NaN());
  weight.view({-1}).index_put_({at::randint(0, 300 * 517, {50})}, 1e-41f);  // fp32 subnormal; 0 in fp16
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    const at::Tensor w = weight.to(dtype);
    EXPECT_EQ(count_zeros(w), w.eq(0).sum().item<int64_t>()) << dtype;
    EXPECT_EQ(count_zeros(w.t()), w.eq(0).sum().item<int64_t>()) << dtype << " transposed";
  }
}

TEST(ZeroMasked, MaskOfAnotherShape_Error) {
  at::Tensor weight = at::zeros({4, 4});
  EXPECT_ANY_THROW(zero_masked_(weight, at::zeros({4, 3}, at::kBool)));
}

}  // namespace
}  // namespace pipeprune
