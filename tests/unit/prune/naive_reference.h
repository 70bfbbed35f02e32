// Naive references for the prune tests: plain loops over std::vector, written from the
// published algorithms (locuslab/wanda, IST-DASLab/sparsegpt) and sharing no code with
// core/prune. Slow and obvious on purpose; small matrices only.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <vector>

namespace pipeprune::naive {

// A dense row-major matrix.
template <typename T>
struct Matrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<T> v;
  Matrix() = default;
  Matrix(int64_t r, int64_t c) : rows(r), cols(c), v(static_cast<size_t>(r * c), T(0)) {}
  T& operator()(int64_t r, int64_t c) { return v[static_cast<size_t>(r * cols + c)]; }
  const T& operator()(int64_t r, int64_t c) const { return v[static_cast<size_t>(r * cols + c)]; }
};

// Masks as bytes (std::vector<bool> has no references to hand out): 1 = pruned.
using Mask = Matrix<uint8_t>;

template <typename T>
inline Matrix<T> from_tensor(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kCPU, at::kDouble).contiguous();
  Matrix<T> m(c.size(0), c.size(1));
  const double* p = c.data_ptr<double>();
  for (size_t i = 0; i < m.v.size(); ++i) m.v[i] = static_cast<T>(p[i]);
  return m;
}

template <typename T>
inline at::Tensor to_tensor(const Matrix<T>& m) {
  at::Tensor t = at::empty({m.rows, m.cols}, at::kDouble);
  double* p = t.data_ptr<double>();
  for (size_t i = 0; i < m.v.size(); ++i) p[i] = static_cast<double>(m.v[i]);
  return t;
}

inline Mask mask_from_tensor(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kCPU, at::kBool).contiguous();
  Mask m(c.size(0), c.size(1));
  const bool* p = c.data_ptr<bool>();
  for (size_t i = 0; i < m.v.size(); ++i) m.v[i] = p[i];
  return m;
}

// Magnitude, unstructured: sort every |w|, threshold at index int(numel*s), prune `<=`.
inline Mask magnitude_unstructured(const Matrix<float>& w, double sparsity) {
  std::vector<float> all;
  for (float x : w.v) all.push_back(std::fabs(x));
  std::sort(all.begin(), all.end());
  const float thresh = all[static_cast<size_t>(static_cast<double>(all.size()) * sparsity)];
  Mask mask(w.rows, w.cols);
  for (size_t i = 0; i < w.v.size(); ++i) mask.v[i] = std::fabs(w.v[i]) <= thresh;
  return mask;
}

// Per row, the first k indices of a stable ascending sort of the scores.
inline Mask stable_sort_prefix(const Matrix<float>& scores, int64_t k) {
  Mask mask(scores.rows, scores.cols);
  for (int64_t r = 0; r < scores.rows; ++r) {
    std::vector<int64_t> order(static_cast<size_t>(scores.cols));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return scores(r, a) < scores(r, b); });
    for (int64_t j = 0; j < k; ++j) mask(r, order[static_cast<size_t>(j)]) = true;
  }
  return mask;
}

// Wanda score |W| * sqrt(scaler) in float, as the reference multiplies fp32 tensors.
inline Matrix<float> wanda_scores(const Matrix<float>& w, const std::vector<float>& scaler) {
  Matrix<float> s(w.rows, w.cols);
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t c = 0; c < w.cols; ++c) s(r, c) = std::fabs(w(r, c)) * std::sqrt(scaler[c]);
  return s;
}

// The Wanda variant's bisection, in float where the reference computes in fp32 tensors.
// Exact for integer-valued scores (sums and cumsums then carry no rounding).
struct VariantResult {
  Mask mask;
  double alpha = 0;
  float sparsity = 0;
  int steps = 0;
};
inline VariantResult wanda_variant(const Matrix<float>& scores, double target) {
  const auto given_alpha = [&](double alpha, VariantResult* out) {
    out->mask = Mask(scores.rows, scores.cols);
    int64_t pruned = 0;
    for (int64_t r = 0; r < scores.rows; ++r) {
      std::vector<float> sorted(scores.v.begin() + r * scores.cols,
                                scores.v.begin() + (r + 1) * scores.cols);
      std::sort(sorted.begin(), sorted.end());
      float row_sum = 0;
      for (float x : sorted) row_sum += x;
      const float limit = row_sum * static_cast<float>(alpha);
      float cumsum = 0;
      int64_t count = 0;
      for (float x : sorted) {
        cumsum += x;
        if (cumsum <= limit) ++count;
      }
      if (count == 0) continue;
      const float thres = sorted[static_cast<size_t>(count - 1)];
      for (int64_t c = 0; c < scores.cols; ++c) {
        out->mask(r, c) = scores(r, c) <= thres;
        pruned += out->mask(r, c) ? 1 : 0;
      }
    }
    out->sparsity = static_cast<float>(pruned) / static_cast<float>(scores.v.size());
    out->alpha = alpha;
  };
  VariantResult result;
  double alpha = 0.4, low = 0.0, high = 0.8;
  given_alpha(alpha, &result);
  const float target_f = static_cast<float>(target);
  while (std::fabs(result.sparsity - target_f) > 0.001f && high - low >= 0.001) {
    if (result.sparsity > target_f) {
      const double next = (alpha + low) / 2.0;
      high = alpha;
      alpha = next;
    } else {
      const double next = (alpha + high) / 2.0;
      low = alpha;
      alpha = next;
    }
    given_alpha(alpha, &result);
    ++result.steps;
  }
  return result;
}

// Lower Cholesky factor of a symmetric positive definite matrix.
inline Matrix<double> cholesky_lower(const Matrix<double>& a) {
  const int64_t n = a.rows;
  Matrix<double> l(n, n);
  for (int64_t j = 0; j < n; ++j) {
    double diag = a(j, j);
    for (int64_t k = 0; k < j; ++k) diag -= l(j, k) * l(j, k);
    if (!(diag > 0)) throw std::runtime_error("naive cholesky: not positive definite");
    l(j, j) = std::sqrt(diag);
    for (int64_t i = j + 1; i < n; ++i) {
      double s = a(i, j);
      for (int64_t k = 0; k < j; ++k) s -= l(i, k) * l(j, k);
      l(i, j) = s / l(j, j);
    }
  }
  return l;
}

// Inverse of an SPD matrix by Gauss-Jordan with partial pivoting.
inline Matrix<double> inverse(Matrix<double> a) {
  const int64_t n = a.rows;
  Matrix<double> inv(n, n);
  for (int64_t i = 0; i < n; ++i) inv(i, i) = 1;
  for (int64_t c = 0; c < n; ++c) {
    int64_t pivot = c;
    for (int64_t r = c + 1; r < n; ++r)
      if (std::fabs(a(r, c)) > std::fabs(a(pivot, c))) pivot = r;
    for (int64_t k = 0; k < n; ++k) {
      std::swap(a(c, k), a(pivot, k));
      std::swap(inv(c, k), inv(pivot, k));
    }
    const double p = a(c, c);
    for (int64_t k = 0; k < n; ++k) {
      a(c, k) /= p;
      inv(c, k) /= p;
    }
    for (int64_t r = 0; r < n; ++r) {
      if (r == c) continue;
      const double f = a(r, c);
      for (int64_t k = 0; k < n; ++k) {
        a(r, k) -= f * a(c, k);
        inv(r, k) -= f * inv(c, k);
      }
    }
  }
  return inv;
}

// SparseGPT in double with plain loops. `min_gap` reports the smallest relative distance
// between a selection threshold and its nearest neighbour score: below ~1e-3 a float
// implementation may legitimately choose differently.
struct SparseGptResult {
  Matrix<double> weight;
  Mask mask;
  double min_gap = 1e30;
};
inline SparseGptResult sparsegpt(Matrix<double> w, Matrix<double> h, double sparsity, int64_t n,
                                 int64_t m, int64_t blocksize, double percdamp) {
  const int64_t rows = w.rows, cols = w.cols;
  SparseGptResult out;
  out.mask = Mask(rows, cols);
  std::vector<bool> dead(static_cast<size_t>(cols), false);
  double mean_diag = 0;
  for (int64_t j = 0; j < cols; ++j) {
    if (h(j, j) == 0) {
      dead[j] = true;
      h(j, j) = 1;
      for (int64_t r = 0; r < rows; ++r) w(r, j) = 0;
    }
    mean_diag += h(j, j) / static_cast<double>(cols);
  }
  for (int64_t j = 0; j < cols; ++j) h(j, j) += percdamp * mean_diag;
  // Upper factor U of H^-1 = U^T U is the transpose of the lower factor of H^-1.
  const Matrix<double> lower = cholesky_lower(inverse(h));
  Matrix<double> u(cols, cols);
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < cols; ++j) u(i, j) = lower(j, i);
  const auto note_gap = [&](double a, double b) {
    const double scale = std::max({std::fabs(a), std::fabs(b), 1e-30});
    out.min_gap = std::min(out.min_gap, std::fabs(a - b) / scale);
  };
  for (int64_t i1 = 0; i1 < cols; i1 += blocksize) {
    const int64_t i2 = std::min(i1 + blocksize, cols);
    Matrix<double> err(rows, i2 - i1);
    if (n == 0) {
      std::vector<double> scores;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = i1; j < i2; ++j) scores.push_back(w(r, j) * w(r, j) / (u(j, j) * u(j, j)));
      std::vector<double> sorted = scores;
      std::sort(sorted.begin(), sorted.end());
      const size_t k = static_cast<size_t>(static_cast<double>(sorted.size()) * sparsity);
      if (k > 0) note_gap(sorted[k], sorted[k - 1]);
      if (k + 1 < sorted.size()) note_gap(sorted[k], sorted[k + 1]);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = i1; j < i2; ++j)
          out.mask(r, j) = scores[static_cast<size_t>(r * (i2 - i1) + j - i1)] <= sorted[k];
    }
    for (int64_t i = i1; i < i2; ++i) {
      if (n != 0 && (i - i1) % m == 0) {
        for (int64_t r = 0; r < rows; ++r) {
          std::vector<std::pair<double, int64_t>> group;
          for (int64_t j = i; j < i + m; ++j)
            group.push_back({w(r, j) * w(r, j) / (u(j, j) * u(j, j)), j});
          std::sort(group.begin(), group.end());
          note_gap(group[n - 1].first, group[n].first);
          for (int64_t g = 0; g < n; ++g) out.mask(r, group[g].second) = true;
        }
      }
      for (int64_t r = 0; r < rows; ++r) {
        const double q = out.mask(r, i) ? 0.0 : w(r, i);
        const double e = (w(r, i) - q) / u(i, i);
        for (int64_t j = i; j < i2; ++j) w(r, j) -= e * u(i, j);
        w(r, i) = q;
        err(r, i - i1) = e;
      }
    }
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = i2; j < cols; ++j)
        for (int64_t i = i1; i < i2; ++i) w(r, j) -= err(r, i - i1) * u(i, j);
  }
  for (int64_t j = 0; j < cols; ++j)
    if (dead[j])
      for (int64_t r = 0; r < rows; ++r) out.mask(r, j) = true;
  out.weight = w;
  return out;
}

}  // namespace pipeprune::naive
