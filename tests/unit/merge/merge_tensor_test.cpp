#include "core/merge/merge_tensor.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/common/error.h"
#include "core/merge/sparsify.h"

namespace pipeprune {
namespace {

using Floats = std::vector<float>;

at::Tensor floats(const Floats& v) { return at::tensor(v, at::kFloat); }

Floats to_floats(const at::Tensor& t) {
  const at::Tensor flat = t.to(at::kCPU, at::kFloat).contiguous().reshape({-1});
  return Floats(flat.data_ptr<float>(), flat.data_ptr<float>() + flat.numel());
}

std::vector<bool> to_bools(const at::Tensor& mask) {
  const at::Tensor flat = mask.to(at::kCPU).contiguous().reshape({-1});
  std::vector<bool> out(static_cast<size_t>(flat.numel()));
  for (int64_t i = 0; i < flat.numel(); ++i) out[static_cast<size_t>(i)] = flat.data_ptr<bool>()[i];
  return out;
}

std::vector<at::Tensor> tensors(const std::vector<Floats>& models) {
  std::vector<at::Tensor> out;
  for (const Floats& m : models) out.push_back(floats(m));
  return out;
}

MergeSettings settings_of(MergeMethod method) { return default_settings(method); }

// ---- linear ----------------------------------------------------------------------------------

TEST(MergeTensorLinear, WeightedSum_WithAndWithoutNormalize) {
  // 0.5 * {1, 2} + 2 * {3, -4} = {0.5 + 6, 1 - 8} = {6.5, -7}; normalized by 2.5: {2.6, -2.8}.
  const std::vector<at::Tensor> x = tensors({{1.f, 2.f}, {3.f, -4.f}});
  const std::vector<ModelParams> p = {{0.5, 1.0}, {2.0, 1.0}};
  MergeSettings s = settings_of(MergeMethod::kLinear);
  s.normalize = false;
  EXPECT_EQ(to_floats(merge_tensor(at::Tensor(), x, p, s, "w")), (Floats{6.5f, -7.f}));
  s.normalize = true;
  const at::Tensor out = merge_tensor(at::Tensor(), x, p, s, "w");
  EXPECT_EQ(out.scalar_type(), at::kFloat);
  EXPECT_EQ(to_floats(out), (Floats{6.5f / 2.5f, -7.f / 2.5f}));
  // A base given to linear is ignored (--base is only the config donor).
  EXPECT_TRUE(at::equal(merge_tensor(floats({100.f, 100.f}), x, p, s, "w"), out));
}

TEST(MergeTensorLinear, Bf16Inputs_ComputedInFp32) {
  // 1.5 + 0.25 = 1.75 exactly in fp32; a bf16 sum would round 3 + 2^-8 = 3.00390625 to 3.
  const std::vector<at::Tensor> x = {floats({1.5f, 3.f}).to(at::kBFloat16), floats({0.25f, 0.00390625f}).to(at::kBFloat16)};
  MergeSettings s = settings_of(MergeMethod::kLinear);
  s.normalize = false;
  EXPECT_EQ(to_floats(merge_tensor(at::Tensor(), x, {{1.0, 1.0}, {1.0, 1.0}}, s, "w")),
            (Floats{1.75f, 3.00390625f}));
}

// ---- task arithmetic -------------------------------------------------------------------------

TEST(MergeTensorTaskArithmetic, Lambda_ScalesMixedDelta) {
  // b = {1, 1, 1}; d0 = {1, -1, 0}, d1 = {0.5, 2, 0}; w = {1, 0.5}:
  // mixed = {1 + 0.25, -1 + 1, 0} = {1.25, 0, 0}; lambda 2: {2.5, 0, 0}; out = {3.5, 1, 1}.
  const at::Tensor b = floats({1.f, 1.f, 1.f});
  const std::vector<at::Tensor> x = tensors({{2.f, 0.f, 1.f}, {1.5f, 3.f, 1.f}});
  const std::vector<ModelParams> p = {{1.0, 1.0}, {0.5, 1.0}};
  MergeSettings s = settings_of(MergeMethod::kTaskArithmetic);
  s.lambda = 2.0;
  EXPECT_EQ(to_floats(merge_tensor(b, x, p, s, "w")), (Floats{3.5f, 1.f, 1.f}));
  // normalize: mixed / (1 + 0.5) first, then lambda: 1 + (1.25 / 1.5) * 2.
  s.normalize = true;
  EXPECT_EQ(to_floats(merge_tensor(b, x, p, s, "w")), (Floats{1.f + (1.25f / 1.5f) * 2.f, 1.f, 1.f}));
}

TEST(MergeTensorTaskArithmetic, ZeroWeightSum_DivisorGuardedToOne) {
  // w = {1, -1}: mixed = d0 - d1 = {0.5, -3, 0}; div = 0 -> 1; out = {1.5, -2, 1}.
  MergeSettings s = settings_of(MergeMethod::kTaskArithmetic);
  s.normalize = true;
  EXPECT_EQ(to_floats(merge_tensor(floats({1.f, 1.f, 1.f}), tensors({{2.f, 0.f, 1.f}, {1.5f, 3.f, 1.f}}),
                                   {{1.0, 1.0}, {-1.0, 1.0}}, s, "w")),
            (Floats{1.5f, -2.f, 1.f}));
}

TEST(MergeTensorTaskArithmetic, NoModels_ReturnsBase) {
  const at::Tensor b = floats({1.f, -2.f}).to(at::kBFloat16);
  EXPECT_EQ(to_floats(merge_tensor(b, {}, {}, settings_of(MergeMethod::kTies), "w")), (Floats{1.f, -2.f}));
}

// ---- ties ------------------------------------------------------------------------------------

// b = 10; deltas (density 1, no trim):
//   d0 = { 1, -1,  2, 0}
//   d1 = { 2, -3, -1, 0}
//   d2 = {-4,  1, -2, 5}
const Floats kTiesBase = {10.f, 10.f, 10.f, 10.f};
const std::vector<Floats> kTiesModels = {{11.f, 9.f, 12.f, 10.f}, {12.f, 7.f, 9.f, 10.f}, {6.f, 11.f, 8.f, 15.f}};

TEST(MergeTensorTies, SignElection_MeanOfAgreeing) {
  // w = 1: sums {-1, -3, -1, 5} elect {-, -, -, +}; agreeing: {d2}, {d0, d1}, {d1, d2}, {d2}
  // (the zeros of d0, d1 never agree): mixed {-4, -4, -3, 5} / div {1, 2, 2, 1}.
  TensorMergeStats stats;
  const at::Tensor out = merge_tensor(floats(kTiesBase), tensors(kTiesModels), {{1, 1}, {1, 1}, {1, 1}},
                                      settings_of(MergeMethod::kTies), "w", &stats);
  EXPECT_EQ(to_floats(out), (Floats{10.f - 4.f, 10.f - 2.f, 10.f - 1.5f, 10.f + 5.f}));
  // Nonzero pairs 3 + 3 + 4 = 10, agreeing 1 + 2 + 2 + 1 = 6.
  ASSERT_TRUE(stats.sign_agreement.has_value());
  EXPECT_DOUBLE_EQ(*stats.sign_agreement, 0.6);
  EXPECT_EQ(stats.kept_fraction, 1.0);
  EXPECT_TRUE(stats.rescale_factors.empty());
}

TEST(MergeTensorTies, DisjointMean_DividesBySumOfAgreeingWeights) {
  // w = {0.5, 1, 2}: wd0 = {0.5, -0.5, 1, 0}, wd1 = {2, -3, -1, 0}, wd2 = {-8, 2, -4, 10};
  // sums {-5.5, -1.5, -4, 10} elect {-, -, -, +}:
  //   e0: wd2 alone         -8 / 2           = -4
  //   e1: wd0, wd1   (-0.5 - 3) / (0.5 + 1)  = -3.5 / 1.5
  //   e2: wd1, wd2     (-1 - 4) / (1 + 2)    = -5 / 3
  //   e3: wd2 alone         10 / 2           = 5
  const at::Tensor out = merge_tensor(floats(kTiesBase), tensors(kTiesModels), {{0.5, 1}, {1, 1}, {2, 1}},
                                      settings_of(MergeMethod::kTies), "w");
  EXPECT_EQ(to_floats(out), (Floats{10.f - 4.f, 10.f + (-3.5f / 1.5f), 10.f + (-5.f / 3.f), 10.f + 5.f}));
}

TEST(MergeTensorTies, CountConsensus_ElectsByNumberOfSigns) {
  // d = {1}, {1}, {-5}: sum -3 would elect -, but two signs against one elect +:
  // mixed 1 + 1 = 2, div 2 -> 1; out = 0 + 1.
  MergeSettings s = settings_of(MergeMethod::kTies);
  const std::vector<at::Tensor> x = tensors({{1.f}, {1.f}, {-5.f}});
  const std::vector<ModelParams> p = {{1, 1}, {1, 1}, {1, 1}};
  EXPECT_EQ(to_floats(merge_tensor(floats({0.f}), x, p, s, "w")), (Floats{-5.f}));
  s.consensus = Consensus::kCount;
  EXPECT_EQ(to_floats(merge_tensor(floats({0.f}), x, p, s, "w")), (Floats{1.f}));
}

TEST(MergeTensorTies, ZeroSum_ElectsPlus_NoAgreementKeepsBase) {
  // d0 = {2, 0}, d1 = {-2, 0}: e0 sums to 0, which elects +: d0 alone, 2 / 1. e1: nothing agrees
  // (zeros), mixed 0, div 0 -> 1: the base.
  const at::Tensor out = merge_tensor(floats({1.f, 1.f}), tensors({{3.f, 1.f}, {-1.f, 1.f}}), {{1, 1}, {1, 1}},
                                      settings_of(MergeMethod::kTies), "w");
  EXPECT_EQ(to_floats(out), (Floats{3.f, 1.f}));
}

TEST(MergeTensorTies, TrimTiesAtThreshold_LowestIndexKept) {
  // density 0.5, k = 2 of 4. d0 = {3, -2, 2, 1}: 3 and the first |2| (index 1), not index 2.
  // d1 = {1, 1, 1, 1}: all tie, indices 0 and 1. Trimmed: t0 = {3, -2, 0, 0}, t1 = {1, 1, 0, 0}.
  //   e0: sum 4, +: (3 + 1) / 2 = 2;  e1: sum -1, -: -2 / 1;  e2, e3: nothing agrees: 0.
  // (Keeping index 2 of d0 instead would give {2, 1, 2, 0}.)
  TensorMergeStats stats;
  const at::Tensor out = merge_tensor(at::zeros({4}), tensors({{3.f, -2.f, 2.f, 1.f}, {1.f, 1.f, 1.f, 1.f}}),
                                      {{1, 0.5}, {1, 0.5}}, settings_of(MergeMethod::kTies), "w", &stats);
  EXPECT_EQ(to_floats(out), (Floats{2.f, -2.f, 0.f, 0.f}));
  EXPECT_DOUBLE_EQ(stats.kept_fraction, 0.5);
  // Nonzero pairs 2 + 2 = 4; agreeing: e0 two, e1 one.
  EXPECT_DOUBLE_EQ(*stats.sign_agreement, 0.75);
}

TEST(MergeTensorTies, DensityOne_Untouched_EvenWithRescale) {
  // Density 1 skips sparsification and its rescale: the untrimmed election of SignElection.
  MergeSettings s = settings_of(MergeMethod::kTies);
  s.rescale = Rescale::kL1;
  TensorMergeStats stats;
  const at::Tensor out =
      merge_tensor(floats(kTiesBase), tensors(kTiesModels), {{1, 1}, {1, 1}, {1, 1}}, s, "w", &stats);
  EXPECT_EQ(to_floats(out), (Floats{6.f, 8.f, 8.5f, 15.f}));
  EXPECT_EQ(stats.rescale_factors, (std::vector<double>{1.0, 1.0, 1.0}));
  EXPECT_EQ(stats.kept_fraction, 1.0);
}

// ---- DARE ------------------------------------------------------------------------------------

// A single model whose task vector is all ones: after the drop, an output element is either the
// base (dropped) or base + the rescale factor (kept), so the output shows the mask and factor.
struct OnesCase {
  int64_t n = 100000;
  double density = 0.3;
  at::Tensor base = at::zeros({100000});
  at::Tensor model = at::ones({100000});
};

TEST(MergeTensorDare, DropFraction_WithinBinomialBounds_L1FactorIsNormRatio) {
  const OnesCase c;
  TensorMergeStats stats;
  const at::Tensor out = merge_tensor(c.base, {c.model}, {{1.0, c.density}}, settings_of(MergeMethod::kDareLinear),
                                      "model.layers.0.mlp.up_proj.weight", &stats);
  const Floats v = to_floats(out);
  const int64_t kept = std::count_if(v.begin(), v.end(), [](float x) { return x != 0.f; });
  const double sigma = std::sqrt(c.n * c.density * (1 - c.density));
  EXPECT_LT(std::fabs(kept - c.n * c.density), 5 * sigma);
  EXPECT_DOUBLE_EQ(stats.kept_fraction, static_cast<double>(kept) / c.n);
  // sum |d| = n, sum |md| = kept: factor n / kept, rounded to fp32; every kept entry 1 * factor.
  const float factor = static_cast<float>(static_cast<double>(c.n) / static_cast<double>(kept));
  ASSERT_EQ(stats.rescale_factors.size(), 1u);
  EXPECT_EQ(stats.rescale_factors[0], static_cast<double>(factor));
  for (float x : v) ASSERT_TRUE(x == 0.f || x == factor) << x;
  EXPECT_FALSE(stats.sign_agreement.has_value());
}

TEST(MergeTensorDare, InvDensity_FactorIsOneOverDensity) {
  const OnesCase c;
  MergeSettings s = settings_of(MergeMethod::kDareLinear);
  s.rescale = Rescale::kInvDensity;
  TensorMergeStats stats;
  const Floats v = to_floats(merge_tensor(c.base, {c.model}, {{1.0, c.density}}, s, "w", &stats));
  EXPECT_DOUBLE_EQ(stats.rescale_factors.at(0), 1.0 / c.density);
  const float kept_value = 1.f / static_cast<float>(c.density);
  for (float x : v) ASSERT_TRUE(x == 0.f || x == kept_value) << x;
}

TEST(MergeTensorDare, L1BelowEps_DropWithoutRescale) {
  // sum |d| = 1e5 * 1e-13 = 1e-8 < 1e-7: kept entries stay 1e-13.
  const OnesCase c;
  const at::Tensor tiny = at::full({c.n}, 1e-13f);
  TensorMergeStats stats;
  const Floats v = to_floats(
      merge_tensor(c.base, {tiny}, {{1.0, c.density}}, settings_of(MergeMethod::kDareLinear), "w", &stats));
  EXPECT_EQ(stats.rescale_factors.at(0), 1.0);
  int64_t kept = 0;
  for (float x : v) {
    ASSERT_TRUE(x == 0.f || x == 1e-13f) << x;
    kept += x != 0.f;
  }
  EXPECT_LT(std::fabs(kept - c.n * c.density), 5 * std::sqrt(c.n * c.density * (1 - c.density)));
}

TEST(MergeTensorDare, MaskFollowsSeedAndTensorName) {
  const OnesCase c;
  MergeSettings s = settings_of(MergeMethod::kDareTies);
  s.seed = 5;
  const at::Tensor a = merge_tensor(c.base, {c.model}, {{1.0, 0.5}}, s, "a.weight");
  EXPECT_TRUE(at::equal(a, merge_tensor(c.base, {c.model}, {{1.0, 0.5}}, s, "a.weight")));
  // Exactly the documented mask: dare_keep_mask with the (name, model 0) stream.
  EXPECT_TRUE(at::equal(at::ne(a, 0), dare_keep_mask({c.n}, 0.5, 5, dare_stream("a.weight", 0))));
  EXPECT_FALSE(at::equal(a, merge_tensor(c.base, {c.model}, {{1.0, 0.5}}, s, "b.weight")));
  s.seed = 6;
  EXPECT_FALSE(at::equal(a, merge_tensor(c.base, {c.model}, {{1.0, 0.5}}, s, "a.weight")));
}

// ---- a naive reference over random tensors -----------------------------------------------------

// GTATask.execute and LinearMergeTask as scalar fp32 loops over std::vectors, element by element,
// with the trim by a stable sort; DARE takes its masks from dare_keep_mask (no second
// implementation reproduces a random stream), everything after the mask is recomputed here.
std::vector<bool> stable_top_k(const Floats& d, double density) {
  const int64_t k = static_cast<int64_t>(density * static_cast<double>(d.size()));
  std::vector<size_t> order(d.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return std::fabs(d[a]) > std::fabs(d[b]); });
  std::vector<bool> keep(d.size(), false);
  for (int64_t j = 0; j < k; ++j) keep[order[static_cast<size_t>(j)]] = true;
  return keep;
}

Floats naive_linear(const std::vector<Floats>& x, const std::vector<ModelParams>& p, bool normalize) {
  Floats out(x[0].size());
  float wsum = 0.f;
  for (const ModelParams& m : p) wsum += static_cast<float>(m.weight);
  for (size_t e = 0; e < out.size(); ++e) {
    float res = static_cast<float>(p[0].weight) * x[0][e];
    for (size_t i = 1; i < x.size(); ++i) res += static_cast<float>(p[i].weight) * x[i][e];
    out[e] = normalize ? res / wsum : res;
  }
  return out;
}

Floats naive_task_vectors(const Floats& b, const std::vector<Floats>& x, const std::vector<ModelParams>& p,
                          const MergeSettings& s, const std::string& name) {
  const size_t n = b.size();
  std::vector<Floats> wd(x.size(), Floats(n));
  for (size_t i = 0; i < x.size(); ++i) {
    Floats d(n);
    for (size_t e = 0; e < n; ++e) d[e] = x[i][e] - b[e];
    if (uses_density(s.method) && p[i].density < 1.0) {
      const std::vector<bool> keep =
          s.method == MergeMethod::kTies
              ? stable_top_k(d, p[i].density)
              : to_bools(dare_keep_mask({static_cast<int64_t>(n)}, p[i].density, s.seed,
                                        dare_stream(name, static_cast<int>(i))));
      double before = 0.0;
      double after = 0.0;
      for (size_t e = 0; e < n; ++e) {
        before += std::fabs(d[e]);
        d[e] = d[e] * (keep[e] ? 1.f : 0.f);
        after += std::fabs(d[e]);
      }
      if (s.rescale == Rescale::kInvDensity) {
        for (float& v : d) v = v / static_cast<float>(p[i].density);
      } else if (s.rescale == Rescale::kL1 && before >= 1e-7 && after >= 1e-7) {
        const float f = static_cast<float>(before / after);
        for (float& v : d) v = v * f;
      }
    }
    for (size_t e = 0; e < n; ++e) wd[i][e] = d[e] * static_cast<float>(p[i].weight);
  }
  Floats out(n);
  for (size_t e = 0; e < n; ++e) {
    float mixed = 0.f;
    float div = 0.f;
    if (s.consensus != Consensus::kNone) {
      float vote = 0.f;
      for (size_t i = 0; i < x.size(); ++i) {
        const float v = s.consensus == Consensus::kSum ? wd[i][e] : static_cast<float>((wd[i][e] > 0) - (wd[i][e] < 0));
        vote = i == 0 ? v : vote + v;
      }
      const bool plus = vote >= 0.f;
      for (size_t i = 0; i < x.size(); ++i) {
        const float agree = (plus ? wd[i][e] > 0.f : wd[i][e] < 0.f) ? 1.f : 0.f;
        mixed = i == 0 ? wd[i][e] * agree : mixed + wd[i][e] * agree;
        div = i == 0 ? static_cast<float>(p[i].weight) * agree : div + static_cast<float>(p[i].weight) * agree;
      }
      if (div == 0.f) div = 1.f;
    } else {
      for (size_t i = 0; i < x.size(); ++i) {
        mixed = i == 0 ? wd[i][e] : mixed + wd[i][e];
        div = i == 0 ? static_cast<float>(p[i].weight) : div + static_cast<float>(p[i].weight);
      }
      if (std::fabs(div) < 1e-8f) div = 1.f;
    }
    if (s.normalize) mixed = mixed / div;
    if (s.lambda != 1.0) mixed = mixed * static_cast<float>(s.lambda);
    out[e] = b[e] + mixed;
  }
  return out;
}

uint32_t bits_of(float f) {
  uint32_t u = 0;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

TEST(MergeTensorReference, RandomTensors_AllMethods_BitExact) {
  std::mt19937 rng(2024);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_int_distribution<int> small_int(-2, 2);
  std::uniform_real_distribution<double> weight(0.1, 1.5);
  const std::vector<double> densities = {0.2, 0.35, 0.5, 0.9, 1.0};
  const std::vector<std::vector<int64_t>> shapes = {{1}, {6}, {5, 7}, {3, 4, 6}, {64, 33}};
  int compared = 0;
  for (const auto& shape : shapes) {
    const int64_t n = std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<int64_t>());
    for (int trial = 0; trial < 6; ++trial) {
      // Odd trials: small integers, so magnitudes tie and votes sum to exactly 0.
      const bool integers = trial % 2 == 1;
      const auto draw = [&] { return integers ? static_cast<float>(small_int(rng)) : normal(rng); };
      Floats b(static_cast<size_t>(n));
      for (float& v : b) v = draw();
      std::vector<Floats> x(3, Floats(static_cast<size_t>(n)));
      for (Floats& m : x) {
        for (size_t e = 0; e < m.size(); ++e) m[e] = b[e] + draw() * (integers ? 1.f : 0.01f);
      }
      std::vector<ModelParams> p(3);
      for (ModelParams& m : p) {
        m.weight = weight(rng);
        m.density = densities[std::uniform_int_distribution<size_t>(0, densities.size() - 1)(rng)];
      }
      if (trial == 4) p[1].weight = -0.7;  // a negative weight flips a task vector
      std::vector<at::Tensor> xt;
      for (const Floats& m : x) xt.push_back(floats(m).reshape(shape));
      const at::Tensor bt = floats(b).reshape(shape);

      for (MergeMethod method : {MergeMethod::kLinear, MergeMethod::kTaskArithmetic, MergeMethod::kTies,
                                 MergeMethod::kDareTies, MergeMethod::kDareLinear}) {
        for (int variant = 0; variant < 4; ++variant) {
          MergeSettings s = default_settings(method);
          s.seed = static_cast<uint64_t>(trial);
          s.normalize = variant % 2 == 0 ? s.normalize : !s.normalize;
          s.lambda = variant >= 2 ? 0.75 : 1.0;
          if (variant == 3 && uses_consensus(method)) s.consensus = Consensus::kCount;
          if (uses_density(method)) s.rescale = static_cast<Rescale>((variant + trial) % 3);
          const std::string name = "model.layers." + std::to_string(trial) + ".w";
          const at::Tensor out = merge_tensor(bt, xt, p, s, name);
          ASSERT_EQ(out.sizes(), bt.sizes());
          const Floats got = to_floats(out);
          const Floats want = method == MergeMethod::kLinear ? naive_linear(x, p, s.normalize)
                                                             : naive_task_vectors(b, x, p, s, name);
          for (size_t e = 0; e < want.size(); ++e) {
            ASSERT_EQ(bits_of(got[e]), bits_of(want[e]))
                << merge_method_name(method) << " variant " << variant << " trial " << trial << " n " << n
                << " element " << e << ": " << got[e] << " vs " << want[e];
          }
          ++compared;
        }
      }
    }
  }
  EXPECT_EQ(compared, 5 * 6 * 5 * 4);
}

// ---- contract errors -------------------------------------------------------------------------

TEST(MergeTensorErrors, ShapeMismatchOrMissingBase_Throw) {
  const std::vector<ModelParams> p = {{1, 1}};
  EXPECT_THROW(merge_tensor(at::zeros({2}), {at::zeros({3})}, p, settings_of(MergeMethod::kTies), "w"), Error);
  EXPECT_THROW(merge_tensor(at::Tensor(), {at::zeros({2})}, p, settings_of(MergeMethod::kTies), "w"), Error);
  EXPECT_THROW(merge_tensor(at::zeros({2}), {at::zeros({2})}, {}, settings_of(MergeMethod::kTies), "w"), Error);
  EXPECT_THROW(merge_tensor(at::Tensor(), {}, {}, settings_of(MergeMethod::kLinear), "w"), Error);
}

}  // namespace
}  // namespace pipeprune
