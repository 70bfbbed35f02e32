// An independent, deliberately naive reference of the Llama/Mistral/Qwen2 decoder for tests:
// double precision, explicit loops per head, per position and per element, RoPE computed from
// its formulas (llama3 smoothing included), own softmax. Written from the papers' and
// transformers' definitions, sharing no code with core/model/decoder.cpp.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <cmath>
#include <vector>

#include "core/model/layer_weights.h"
#include "tiny_model.h"

namespace pipeprune::testing {

using Matrix = std::vector<std::vector<double>>;  // [rows][cols]

struct NaiveLinear {
  Matrix w;               // [out][in]
  std::vector<double> b;  // empty when no bias
};
struct NaiveLayer {
  std::vector<double> input_norm, post_norm;
  std::array<NaiveLinear, kNumLinears> linears;
};
struct NaiveModel {
  ModelConfig config;
  Matrix embed;
  std::vector<NaiveLayer> layers;
  std::vector<double> norm;
  Matrix lm_head;
};
// Inputs of each linear of one layer for one sequence, as [tokens][in].
using NaiveTaps = std::array<Matrix, kNumLinears>;

inline std::vector<double> to_vector(const at::Tensor& t) {
  const at::Tensor d = t.to(at::kDouble).contiguous();
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

inline Matrix to_matrix(const at::Tensor& t) {
  Matrix m(t.size(0));
  for (int64_t r = 0; r < t.size(0); ++r) m[r] = to_vector(t[r]);
  return m;
}

inline NaiveModel to_naive(const TinyModel& model) {
  NaiveModel n;
  n.config = model.config;
  n.embed = to_matrix(model.embedding.embed_tokens);
  for (const DecoderLayerWeights& w : model.layers) {
    NaiveLayer layer;
    layer.input_norm = to_vector(w.input_layernorm);
    layer.post_norm = to_vector(w.post_attention_layernorm);
    for (int i = 0; i < kNumLinears; ++i) {
      layer.linears[i].w = to_matrix(w.linears[i].weight);
      if (w.linears[i].bias.defined()) layer.linears[i].b = to_vector(w.linears[i].bias);
    }
    n.layers.push_back(std::move(layer));
  }
  n.norm = to_vector(model.head.norm);
  n.lm_head = to_matrix(model.head.lm_head);
  return n;
}

inline Matrix naive_linear(const Matrix& x, const NaiveLinear& l) {
  Matrix out(x.size(), std::vector<double>(l.w.size(), 0.0));
  for (size_t t = 0; t < x.size(); ++t) {
    for (size_t o = 0; o < l.w.size(); ++o) {
      double sum = l.b.empty() ? 0.0 : l.b[o];
      for (size_t i = 0; i < x[t].size(); ++i) sum += x[t][i] * l.w[o][i];
      out[t][o] = sum;
    }
  }
  return out;
}

inline Matrix naive_rms_norm(const Matrix& x, const std::vector<double>& w, double eps) {
  Matrix out = x;
  for (auto& row : out) {
    double sq = 0;
    for (double v : row) sq += v * v;
    const double inv = 1.0 / std::sqrt(sq / row.size() + eps);
    for (size_t i = 0; i < row.size(); ++i) row[i] = row[i] * inv * w[i];
  }
  return out;
}

// theta^(-2i/d), then rope scaling: linear divides by the factor; llama3 keeps short
// wavelengths, divides long ones by the factor and blends linearly in between.
inline std::vector<double> naive_inv_freq(const ModelConfig& c) {
  std::vector<double> f(c.head_dim / 2);
  const RopeScaling& r = c.rope_scaling;
  for (size_t i = 0; i < f.size(); ++i) {
    double freq = std::pow(c.rope_theta, -2.0 * double(i) / double(c.head_dim));
    if (r.type == RopeScaling::Type::kLinear) {
      freq /= r.factor;
    } else if (r.type == RopeScaling::Type::kLlama3) {
      const double wavelength = 2 * M_PI / freq;
      const double old_len = double(r.original_max_position_embeddings);
      if (wavelength > old_len / r.low_freq_factor) {
        freq /= r.factor;
      } else if (wavelength >= old_len / r.high_freq_factor) {
        const double s = (old_len / wavelength - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
        freq = (1 - s) * freq / r.factor + s * freq;
      }
    }
    f[i] = freq;
  }
  return f;
}

// Rotates head vector x[begin .. begin+D) for `position`: pairs (i, i + D/2).
inline void naive_rope(std::vector<double>& x, size_t begin, int64_t position, const std::vector<double>& inv_freq) {
  const size_t half = inv_freq.size();
  for (size_t i = 0; i < half; ++i) {
    const double angle = double(position) * inv_freq[i];
    const double a = x[begin + i], b = x[begin + i + half];
    x[begin + i] = a * std::cos(angle) - b * std::sin(angle);
    x[begin + i + half] = b * std::cos(angle) + a * std::sin(angle);
  }
}

inline Matrix naive_attention(const ModelConfig& c, Matrix q, Matrix k, const Matrix& v, int64_t offset,
                              const std::vector<int64_t>& query_rows) {
  const std::vector<double> inv_freq = naive_inv_freq(c);
  const int64_t tokens = int64_t(q.size()), d = c.head_dim, groups = c.n_heads / c.n_kv_heads;
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t h = 0; h < c.n_heads; ++h) naive_rope(q[t], h * d, offset + t, inv_freq);
    for (int64_t h = 0; h < c.n_kv_heads; ++h) naive_rope(k[t], h * d, offset + t, inv_freq);
  }
  Matrix out(tokens, std::vector<double>(c.n_heads * d, 0.0));
  for (int64_t t : query_rows) {
    for (int64_t h = 0; h < c.n_heads; ++h) {
      const int64_t kv = h / groups;
      std::vector<double> scores;
      std::vector<int64_t> keys;
      for (int64_t s = 0; s <= t; ++s) {
        if (c.sliding_window && t - s >= *c.sliding_window) continue;
        double dot = 0;
        for (int64_t i = 0; i < d; ++i) dot += q[t][h * d + i] * k[s][kv * d + i];
        scores.push_back(dot / std::sqrt(double(d)));
        keys.push_back(s);
      }
      double max_score = scores[0], total = 0;
      for (double s : scores) max_score = std::max(max_score, s);
      for (double& s : scores) total += (s = std::exp(s - max_score));
      for (size_t j = 0; j < keys.size(); ++j) {
        for (int64_t i = 0; i < d; ++i) out[t][h * d + i] += scores[j] / total * v[keys[j]][kv * d + i];
      }
    }
  }
  return out;
}

// One decoder layer over one sequence x [tokens][hidden] at positions offset.. . Only the rows
// in query_rows (default: all) of the result are computed; taps need all rows.
inline Matrix naive_layer(const NaiveLayer& w, const ModelConfig& c, const Matrix& x, int64_t offset,
                          NaiveTaps* taps = nullptr, std::vector<int64_t> query_rows = {}) {
  if (query_rows.empty()) {
    for (int64_t t = 0; t < int64_t(x.size()); ++t) query_rows.push_back(t);
  }
  auto lin = [&](LinearKind kind, const Matrix& in) {
    if (taps) (*taps)[int(kind)] = in;
    return naive_linear(in, w.linears[int(kind)]);
  };
  const Matrix normed = naive_rms_norm(x, w.input_norm, c.rms_norm_eps);
  const Matrix q = lin(LinearKind::kQ, normed), k = lin(LinearKind::kK, normed), v = lin(LinearKind::kV, normed);
  const Matrix o = lin(LinearKind::kO, naive_attention(c, q, k, v, offset, query_rows));
  Matrix h = x;
  for (size_t t = 0; t < h.size(); ++t)
    for (size_t i = 0; i < h[t].size(); ++i) h[t][i] += o[t][i];
  const Matrix normed2 = naive_rms_norm(h, w.post_norm, c.rms_norm_eps);
  const Matrix gate = lin(LinearKind::kGate, normed2), up = lin(LinearKind::kUp, normed2);
  Matrix act = gate;
  for (size_t t = 0; t < act.size(); ++t)
    for (size_t i = 0; i < act[t].size(); ++i) act[t][i] = gate[t][i] / (1 + std::exp(-gate[t][i])) * up[t][i];
  const Matrix down = lin(LinearKind::kDown, act);
  for (size_t t = 0; t < h.size(); ++t)
    for (size_t i = 0; i < h[t].size(); ++i) h[t][i] += down[t][i];
  return h;
}

// Logits [tokens][vocab] of one sequence; taps (optional) receive each layer's linear inputs.
inline Matrix naive_logits(const NaiveModel& m, const std::vector<int64_t>& tokens, int64_t offset = 0,
                           std::vector<NaiveTaps>* taps = nullptr) {
  Matrix h;
  for (int64_t id : tokens) h.push_back(m.embed[id]);
  if (taps) taps->assign(m.layers.size(), NaiveTaps{});
  for (size_t l = 0; l < m.layers.size(); ++l) {
    h = naive_layer(m.layers[l], m.config, h, offset, taps ? &(*taps)[l] : nullptr);
  }
  return naive_linear(naive_rms_norm(h, m.norm, m.config.rms_norm_eps), NaiveLinear{m.lm_head, {}});
}

// [batch][tokens][cols] -> a double tensor.
inline at::Tensor to_tensor(const std::vector<Matrix>& batch) {
  const int64_t b = int64_t(batch.size()), t = int64_t(batch[0].size()), c = int64_t(batch[0][0].size());
  at::Tensor out = at::empty({b, t, c}, at::kDouble);
  auto acc = out.accessor<double, 3>();
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < t; ++j)
      for (int64_t k = 0; k < c; ++k) acc[i][j][k] = batch[i][j][k];
  return out;
}

inline std::vector<int64_t> row_tokens(const at::Tensor& tokens, int64_t row) {
  const at::Tensor r = tokens[row].contiguous();
  return std::vector<int64_t>(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
}

}  // namespace pipeprune::testing
