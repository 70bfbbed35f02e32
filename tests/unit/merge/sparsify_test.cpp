#include "core/merge/sparsify.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

namespace pipeprune {
namespace {

std::vector<bool> to_bools(const at::Tensor& mask) {
  const at::Tensor flat = mask.to(at::kCPU).contiguous().reshape({-1});
  std::vector<bool> out(static_cast<size_t>(flat.numel()));
  for (int64_t i = 0; i < flat.numel(); ++i) out[static_cast<size_t>(i)] = flat.data_ptr<bool>()[i];
  return out;
}

std::vector<float> to_floats(const at::Tensor& t) {
  const at::Tensor flat = t.to(at::kCPU, at::kFloat).contiguous().reshape({-1});
  return std::vector<float>(flat.data_ptr<float>(), flat.data_ptr<float>() + flat.numel());
}

at::Tensor floats(const std::vector<float>& v) { return at::tensor(v, at::kFloat); }

// at::tensor has no bool overload in LibTorch 1.13.
at::Tensor bools(const std::vector<int>& v) { return at::tensor(v, at::kInt).to(at::kBool); }

// The first k of a stable sort by |x| descending: the rule magnitude_keep_mask implements
// without sorting.
std::vector<bool> naive_magnitude(const std::vector<float>& x, double density) {
  const int64_t k = static_cast<int64_t>(density * static_cast<double>(x.size()));
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return std::fabs(x[a]) > std::fabs(x[b]); });
  std::vector<bool> keep(x.size(), false);
  for (int64_t j = 0; j < k; ++j) keep[order[static_cast<size_t>(j)]] = true;
  return keep;
}

// ---- magnitude_keep_mask ---------------------------------------------------------------------

TEST(MagnitudeKeepMask, KeepsLargestMagnitudes_ShapeAndBool) {
  // k = int(0.4 * 6) = 2: |-0.5| and |0.4| (indices 1 and 4).
  const at::Tensor delta = floats({0.1f, -0.5f, 0.3f, -0.2f, 0.4f, 0.0f}).reshape({2, 3});
  const at::Tensor mask = magnitude_keep_mask(delta, 0.4);
  EXPECT_EQ(mask.scalar_type(), at::kBool);
  EXPECT_EQ(mask.sizes(), delta.sizes());
  EXPECT_EQ(to_bools(mask), (std::vector<bool>{false, true, false, false, true, false}));
}

TEST(MagnitudeKeepMask, KIsTruncatedDoubleProduct) {
  // 0.29 * 100 = 28.999999999999996 in double: Python's int() gives 28, not 29.
  std::vector<float> x(100);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) + 1.0f;
  const std::vector<bool> keep = to_bools(magnitude_keep_mask(floats(x), 0.29));
  EXPECT_EQ(std::count(keep.begin(), keep.end(), true), 28);
  EXPECT_TRUE(keep[72]);   // 73, the 28th largest
  EXPECT_FALSE(keep[71]);  // 72, the 29th
}

TEST(MagnitudeKeepMask, TiesAtThreshold_LowestIndexKept) {
  // k = int(0.5 * 8) = 4: |3| (index 3), then three of the five |2| at 1, 2, 4, 5, 7: the
  // lowest indices 1, 2, 4.
  const at::Tensor delta = floats({1.f, -2.f, 2.f, 3.f, -2.f, 2.f, 0.5f, 2.f});
  EXPECT_EQ(to_bools(magnitude_keep_mask(delta, 0.5)),
            (std::vector<bool>{false, true, true, true, true, false, false, false}));
}

TEST(MagnitudeKeepMask, AllZero_FirstKKept) {
  // One giant tie (an untouched tensor's delta): the first k = int(0.3 * 1000) = 300 win.
  const std::vector<bool> keep = to_bools(magnitude_keep_mask(at::zeros({10, 100}), 0.3));
  for (size_t i = 0; i < keep.size(); ++i) ASSERT_EQ(keep[i], i < 300) << i;
}

TEST(MagnitudeKeepMask, DensityOneKeepsAll_ZeroKKeepsNone) {
  const at::Tensor delta = floats({1.f, -2.f, 3.f, 0.f, 5.f});
  EXPECT_EQ(magnitude_keep_mask(delta, 1.0).sum().item<int64_t>(), 5);
  EXPECT_EQ(magnitude_keep_mask(delta, 1.5).sum().item<int64_t>(), 5);
  EXPECT_EQ(magnitude_keep_mask(delta, 0.1).sum().item<int64_t>(), 0);  // int(0.5) = 0
}

TEST(MagnitudeKeepMask, NaNIsLargest_NegativeZeroTiesZero) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // k = 2: the NaN (index 2) and 7 (index 0).
  EXPECT_EQ(to_bools(magnitude_keep_mask(floats({7.f, 1.f, nan, -3.f}), 0.5)),
            (std::vector<bool>{true, false, true, false}));
  // -0 and +0 tie: k = int(0.75 * 4) = 3 keeps 1 and then the lowest two zeros (indices 0, 1).
  EXPECT_EQ(to_bools(magnitude_keep_mask(floats({-0.f, 0.f, -0.f, 1.f}), 0.75)),
            (std::vector<bool>{true, true, false, true}));
}

TEST(MagnitudeKeepMask, RandomTensors_EqualStableSort) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_int_distribution<int> small_int(-3, 3);
  for (int64_t n : {1, 2, 7, 64, 1000, 70001}) {
    for (int kind = 0; kind < 4; ++kind) {
      std::vector<float> x(static_cast<size_t>(n));
      for (size_t i = 0; i < x.size(); ++i) {
        switch (kind) {
          case 0: x[i] = normal(rng); break;
          case 1: x[i] = static_cast<float>(small_int(rng)); break;  // ties everywhere
          // Keys sharing their top 16 bits, differing in the low ones (the second radix level).
          case 2: x[i] = 1.0f + static_cast<float>(small_int(rng) + 3) * 0x1p-23f; break;
          // Magnitudes over many decades, denormals included.
          default: x[i] = normal(rng) * std::ldexp(1.0f, small_int(rng) * 45); break;
        }
      }
      for (double density : {0.01, 0.1, 0.29, 0.5, 0.77, 0.999}) {
        EXPECT_EQ(to_bools(magnitude_keep_mask(floats(x), density)), naive_magnitude(x, density))
            << "n " << n << " kind " << kind << " density " << density;
      }
    }
  }
}

TEST(MagnitudeKeepMask, Bf16Input_RankedAsFp32) {
  const at::Tensor delta = floats({0.5f, -1.5f, 1.5f, 0.25f}).to(at::kBFloat16);
  // k = 2: the two |1.5| (indices 1, 2).
  EXPECT_EQ(to_bools(magnitude_keep_mask(delta, 0.5)), (std::vector<bool>{false, true, true, false}));
}

// ---- dare_keep_mask --------------------------------------------------------------------------

TEST(DareKeepMask, KeptFraction_WithinFiveSigmaOfBinomial) {
  const int64_t n = 100000;
  for (double p : {0.05, 0.1, 0.5, 0.9}) {
    for (uint64_t stream : {uint64_t{0}, dare_stream("model.layers.3.mlp.down_proj.weight", 2)}) {
      const at::Tensor mask = dare_keep_mask({n}, p, 11, stream);
      const double kept = static_cast<double>(mask.sum().item<int64_t>());
      const double sigma = std::sqrt(static_cast<double>(n) * p * (1.0 - p));
      EXPECT_LT(std::fabs(kept - static_cast<double>(n) * p), 5.0 * sigma) << "p " << p;
      // Halves of the tensor too: no drift along the counter.
      const double first = static_cast<double>(mask.slice(0, 0, n / 2).sum().item<int64_t>());
      EXPECT_LT(std::fabs(first - static_cast<double>(n / 2) * p), 5.0 * sigma / std::sqrt(2.0)) << "p " << p;
    }
  }
}

TEST(DareKeepMask, DensityOne_KeepsAll) {
  EXPECT_EQ(dare_keep_mask({10, 10}, 1.0, 3, 4).sum().item<int64_t>(), 100);
}

TEST(DareKeepMask, SameSeedAndStream_Identical) {
  const at::Tensor a = dare_keep_mask({300, 70}, 0.3, 42, 9);
  EXPECT_TRUE(at::equal(a, dare_keep_mask({300, 70}, 0.3, 42, 9)));
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{300, 70}));
  EXPECT_TRUE(a.is_cpu());
}

// Two independent masks of density 1/2 agree on about half the elements.
void expect_independent(const at::Tensor& a, const at::Tensor& b) {
  const double n = static_cast<double>(a.numel());
  const double agree = static_cast<double>(at::eq(a, b).sum().item<int64_t>());
  EXPECT_LT(std::fabs(agree - n / 2), 5.0 * std::sqrt(n / 4));
}

TEST(DareKeepMask, OtherStreamOrSeed_Independent) {
  const int64_t n = 100000;
  const at::Tensor a = dare_keep_mask({n}, 0.5, 1, dare_stream("w", 0));
  expect_independent(a, dare_keep_mask({n}, 0.5, 1, dare_stream("w", 1)));
  expect_independent(a, dare_keep_mask({n}, 0.5, 1, dare_stream("v", 0)));
  expect_independent(a, dare_keep_mask({n}, 0.5, 2, dare_stream("w", 0)));
  // Neighbouring raw streams and seeds too.
  expect_independent(dare_keep_mask({n}, 0.5, 0, 0), dare_keep_mask({n}, 0.5, 0, 1));
  expect_independent(dare_keep_mask({n}, 0.5, 0, 0), dare_keep_mask({n}, 0.5, 1, 0));
}

TEST(DareKeepMask, ElementDependsOnIndexOnly_NotShape) {
  const at::Tensor long_mask = dare_keep_mask({2000}, 0.4, 5, 77);
  EXPECT_TRUE(at::equal(long_mask.slice(0, 0, 1000), dare_keep_mask({1000}, 0.4, 5, 77)));
  EXPECT_TRUE(at::equal(long_mask, dare_keep_mask({40, 50}, 0.4, 5, 77).reshape({-1})));
  EXPECT_TRUE(at::equal(long_mask, dare_keep_mask({2, 10, 100}, 0.4, 5, 77).reshape({-1})));
}

TEST(DareKeepMask, SameAtEveryThreadCount) {
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one = dare_keep_mask({1 << 20}, 0.3, 8, 8);
  at::set_num_threads(std::max(2, threads));
  const at::Tensor many = dare_keep_mask({1 << 20}, 0.3, 8, 8);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(one, many));
}

// The generator as documented, written again here: a change of stream or hash (which would
// change every DARE merge made so far) fails this test.
uint64_t ref_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

TEST(DareKeepMask, MatchesDocumentedGenerator) {
  const uint64_t gamma = 0x9E3779B97F4A7C15ull;
  const std::string name = "model.layers.0.self_attn.q_proj.weight";
  uint64_t fnv = 0xCBF29CE484222325ull;
  for (char c : name) fnv = (fnv ^ static_cast<uint8_t>(c)) * 0x100000001B3ull;
  const uint64_t stream = ref_mix(fnv ^ ref_mix(uint64_t{2} + gamma));
  ASSERT_EQ(dare_stream(name, 2), stream);
  const uint64_t seed = 1234;
  const uint64_t key = ref_mix(ref_mix(seed + gamma) ^ stream);
  const double p = 0.37;
  const std::vector<bool> mask = to_bools(dare_keep_mask({5000}, p, seed, stream));
  for (uint64_t i = 0; i < mask.size(); ++i) {
    const double u = static_cast<double>(ref_mix(key + (i + 1) * gamma) >> 11) * 0x1p-53;
    ASSERT_EQ(mask[i], u < p) << i;
  }
}

TEST(DareStream, DistinguishesNameAndIndex) {
  EXPECT_NE(dare_stream("a", 0), dare_stream("a", 1));
  EXPECT_NE(dare_stream("a", 0), dare_stream("b", 0));
  EXPECT_NE(dare_stream("", 0), dare_stream("", 1));
  EXPECT_EQ(dare_stream("a", 3), dare_stream("a", 3));
}

// ---- rescaled_masked -------------------------------------------------------------------------

TEST(RescaledMasked, None_MasksAndKeepsNegativeZero) {
  double factor = -1.0;
  const at::Tensor md = rescaled_masked(floats({1.f, -2.f, 3.f}), bools({1, 0, 0}), Rescale::kNone,
                                        0.5, &factor);
  EXPECT_EQ(to_floats(md), (std::vector<float>{1.f, 0.f, 0.f}));
  EXPECT_TRUE(std::signbit(to_floats(md)[1]));  // -2 * 0 = -0, as mergekit's float mask gives
  EXPECT_EQ(factor, 1.0);
}

TEST(RescaledMasked, InvDensity_DividesByFloatDensity) {
  double factor = 0.0;
  const at::Tensor md = rescaled_masked(floats({1.f, -2.f, 3.f, 4.f}), bools({1, 0, 1, 1}),
                                        Rescale::kInvDensity, 0.75, &factor);
  // 1/0.75, -0/0.75, 3/0.75, 4/0.75 in fp32.
  EXPECT_EQ(to_floats(md), (std::vector<float>{1.f / 0.75f, -0.f, 3.f / 0.75f, 4.f / 0.75f}));
  EXPECT_DOUBLE_EQ(factor, 1.0 / 0.75);
}

TEST(RescaledMasked, L1_HandWorkedFactor) {
  double factor = 0.0;
  // before = 1 + 2 + 3 + 4 = 10, after = 1 + 4 = 5, factor 2: {2, -0, 0, -8}.
  const at::Tensor md = rescaled_masked(floats({1.f, -2.f, 3.f, -4.f}), bools({1, 0, 0, 1}),
                                        Rescale::kL1, 0.5, &factor);
  EXPECT_EQ(factor, 2.0);
  EXPECT_EQ(to_floats(md), (std::vector<float>{2.f, -0.f, 0.f, -8.f}));
}

TEST(RescaledMasked, L1_FactorIsRatioOfNorms_OnLargeTensor) {
  at::manual_seed(3);
  const at::Tensor delta = at::randn({317, 331});
  const at::Tensor keep = dare_keep_mask(delta.sizes(), 0.3, 1, 2);
  double factor = 0.0;
  const std::vector<float> md = to_floats(rescaled_masked(delta, keep, Rescale::kL1, 0.3, &factor));
  const std::vector<float> d = to_floats(delta);
  const std::vector<bool> k = to_bools(keep);
  double before = 0.0;
  double after = 0.0;
  for (size_t i = 0; i < d.size(); ++i) {
    before += std::fabs(d[i]);
    if (k[i]) after += std::fabs(d[i]);
  }
  const float expected = static_cast<float>(before / after);
  // fp64 sums in another order agree to far below fp32's resolution.
  EXPECT_EQ(static_cast<float>(factor), expected);
  EXPECT_NEAR(factor, 1.0 / 0.3, 0.1);  // ~1/density only in expectation
  for (size_t i = 0; i < d.size(); ++i) {
    ASSERT_EQ(md[i], (d[i] * static_cast<float>(k[i])) * static_cast<float>(factor)) << i;
  }
}

TEST(RescaledMasked, L1_BelowEps_Unscaled) {
  double factor = 0.0;
  // before = 10 * 1e-9 = 1e-8 < 1e-7: no rescale.
  const at::Tensor tiny = at::full({10}, 1e-9f);
  const at::Tensor keep = bools({1, 0, 1, 0, 1, 0, 1, 0, 1, 0});
  EXPECT_TRUE(at::equal(rescaled_masked(tiny, keep, Rescale::kL1, 0.5, &factor), at::mul(tiny, keep)));
  EXPECT_EQ(factor, 1.0);
  // after = 1e-8 < 1e-7 although before is 1: no rescale either.
  factor = 0.0;
  const at::Tensor md = rescaled_masked(floats({1.f, 1e-8f}), bools({0, 1}), Rescale::kL1, 0.5, &factor);
  EXPECT_EQ(to_floats(md), (std::vector<float>{0.f, 1e-8f}));
  EXPECT_EQ(factor, 1.0);
}

TEST(RescaledMasked, NullFactor_Allowed) {
  EXPECT_EQ(to_floats(rescaled_masked(floats({1.f, 3.f}), bools({0, 1}), Rescale::kL1, 0.5, nullptr)),
            (std::vector<float>{0.f, 4.f}));
}

}  // namespace
}  // namespace pipeprune
