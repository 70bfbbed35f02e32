// The CPU rotary kernel against transformers' expression in ATen ops, bit for bit: contiguous
// and strided inputs (a fused qkv_proj's q is a narrow of a wider row), special values, and
// more than one thread.
#include "core/model/rotary_kernel.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/common/error.h"

namespace pipeprune {
namespace {

// transformers: x * cos + rotate_half(x) * sin on [B, heads, T, D], cos/sin [T, D].
at::Tensor reference_rotary(const at::Tensor& x_bthd, const at::Tensor& cos, const at::Tensor& sin) {
  const at::Tensor x = x_bthd.transpose(1, 2);
  const int64_t half = x.size(-1) / 2;
  const at::Tensor rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return (x * cos + rotated * sin).transpose(1, 2);
}

void expect_same_bits(const at::Tensor& a, const at::Tensor& b) {
  ASSERT_EQ(a.sizes(), b.sizes());
  const at::Tensor ai = a.contiguous().view(at::kInt), bi = b.contiguous().view(at::kInt);
  const int64_t differing = ai.ne(bi).sum().item<int64_t>();
  EXPECT_EQ(differing, 0) << "of " << a.numel() << " elements";
}

TEST(RotaryKernel, SameBitsAsAtenExpression) {
  c10::InferenceMode guard;
  at::manual_seed(5);
  for (int threads : {1, 3}) {
    at::set_num_threads(threads);
    const int64_t batch = 2, tokens = 37, heads = 5, dim = 64;
    // Values over many binades, so products and sums round.
    const at::Tensor x = at::randn({batch, tokens, heads, dim}) * at::exp(at::randn({batch, tokens, heads, dim}) * 3);
    const at::Tensor angles = at::arange(tokens, at::kFloat).unsqueeze(1) * at::rand({1, dim}) * 7;
    const at::Tensor cos = at::cos(angles), sin = at::sin(angles);
    ASSERT_TRUE(rotate_cpu_applies(x, cos));
    const at::Tensor out = rotate_cpu(x, cos, sin);
    EXPECT_TRUE(out.is_contiguous());
    expect_same_bits(out, reference_rotary(x, cos, sin));
  }
  at::set_num_threads(1);
}

TEST(RotaryKernel, StridedInput_FusedProjectionNarrow) {
  c10::InferenceMode guard;
  at::manual_seed(6);
  const int64_t tokens = 9, heads = 4, dim = 16;
  // [1, T, q + 2 kv] with q = heads * dim first: q is a view with a row stride of the whole row.
  const at::Tensor qkv = at::randn({1, tokens, heads * dim + 2 * 2 * dim});
  const at::Tensor q = qkv.narrow(-1, 0, heads * dim).reshape({1, tokens, heads, dim});
  ASSERT_FALSE(q.is_contiguous());
  const at::Tensor angles = at::arange(tokens, at::kFloat).unsqueeze(1) * at::rand({1, dim});
  const at::Tensor cos = at::cos(angles), sin = at::sin(angles);
  ASSERT_TRUE(rotate_cpu_applies(q, cos));
  expect_same_bits(rotate_cpu(q, cos, sin), reference_rotary(q, cos, sin));
}

TEST(RotaryKernel, SpecialValues) {
  c10::InferenceMode guard;
  const float inf = std::numeric_limits<float>::infinity();
  const float big = std::numeric_limits<float>::max();
  const float tiny = std::numeric_limits<float>::denorm_min();
  // Every pair (x[i], x[i + half]) of these values, against every (cos, sin) pair below.
  const std::vector<float> values{0.0f, -0.0f, 1.0f, -1.5f, big, -big, tiny, inf, -inf};
  const int64_t n = static_cast<int64_t>(values.size());
  at::Tensor x = at::empty({1, 1, n * n, 2});
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      x[0][0][i * n + j][0] = values[i];
      x[0][0][i * n + j][1] = values[j];
    }
  }
  for (const auto& [c, s] : std::vector<std::pair<float, float>>{{1, 0}, {0, 1}, {-0.0f, 0.5f}, {0.6f, -0.8f}, {2, 2}}) {
    const at::Tensor cos = at::full({1, 2}, c), sin = at::full({1, 2}, s);
    const at::Tensor out = rotate_cpu(x, cos, sin), expected = reference_rotary(x, cos, sin);
    // NaN from inf - inf: any NaN matches (ATen and the kernel may differ in the NaN's sign).
    const at::Tensor both_nan = out.isnan().logical_and(expected.isnan());
    const at::Tensor equal_bits = out.view(at::kInt).eq(expected.view(at::kInt));
    EXPECT_TRUE(both_nan.logical_or(equal_bits).all().item<bool>()) << "cos " << c << " sin " << s;
  }
}

TEST(RotaryKernel, OnlyWhereItApplies) {
  const at::Tensor cos = at::ones({4, 8});
  EXPECT_TRUE(rotate_cpu_applies(at::zeros({1, 4, 2, 8}), cos));
  EXPECT_FALSE(rotate_cpu_applies(at::zeros({1, 4, 2, 8}, at::kBFloat16), cos));
  EXPECT_FALSE(rotate_cpu_applies(at::zeros({1, 4, 2, 8}), at::ones({4, 8}, at::kDouble)));
  EXPECT_FALSE(rotate_cpu_applies(at::zeros({1, 4, 2, 8}), at::ones({4, 6})));  // partial rotary
  EXPECT_FALSE(rotate_cpu_applies(at::zeros({1, 4, 8, 2}).transpose(2, 3), cos));  // D not unit stride
  EXPECT_FALSE(rotate_cpu_applies(at::zeros({1, 4, 2, 7}), at::ones({4, 7})));  // odd D
  EXPECT_THROW(rotate_cpu(at::zeros({1, 4, 2, 8}), at::ones({4, 6}), at::ones({4, 6})), Error);
}

}  // namespace
}  // namespace pipeprune
