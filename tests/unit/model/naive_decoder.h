// An independent, deliberately naive reference of the Llama/Mistral/Qwen2/Qwen3/Phi3/Gemma2/Gemma3
// decoder for tests: double precision, explicit loops per head, per position and per element,
// RoPE computed from its formulas (llama3 smoothing included), own softmax, own GELU. Written
// from the papers' and transformers' definitions, sharing no code with core/model/decoder.cpp.
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
  int64_t index = 0;
  std::array<std::vector<double>, kNumNorms> norms;  // empty when the layer has none
  std::array<NaiveLinear, kNumLinears> linears;
  const std::vector<double>& norm(NormKind kind) const { return norms[int(kind)]; }
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
    layer.index = w.layer;
    for (int i = 0; i < kNumNorms; ++i) {
      if (w.norms[i].defined()) layer.norms[i] = to_vector(w.norms[i]);
    }
    for (int i = 0; i < kNumLinears; ++i) {
      if (!w.linears[i].weight.defined()) continue;  // phi3's fused layers have four
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

// plus_one: gemma's x_normed * (1 + w).
inline Matrix naive_rms_norm(const Matrix& x, const std::vector<double>& w, double eps, bool plus_one = false) {
  Matrix out = x;
  for (auto& row : out) {
    double sq = 0;
    for (double v : row) sq += v * v;
    const double inv = 1.0 / std::sqrt(sq / row.size() + eps);
    for (size_t i = 0; i < row.size(); ++i) row[i] = row[i] * inv * (plus_one ? 1.0 + w[i] : w[i]);
  }
  return out;
}

inline Matrix naive_norm(const ModelConfig& c, const Matrix& x, const std::vector<double>& w) {
  return naive_rms_norm(x, w, c.rms_norm_eps, c.model_type == "gemma2" || c.model_type == "gemma3_text");
}

// Normalizes each head_dim slice of every row on its own (qwen3/gemma3 q and k norms).
inline Matrix naive_head_norm(const ModelConfig& c, const Matrix& x, const std::vector<double>& w) {
  Matrix out = x;
  const size_t d = size_t(c.head_dim);
  for (auto& row : out) {
    for (size_t h = 0; h * d < row.size(); ++h) {
      Matrix one = {std::vector<double>(row.begin() + h * d, row.begin() + (h + 1) * d)};
      one = naive_norm(c, one, w);
      std::copy(one[0].begin(), one[0].end(), row.begin() + h * d);
    }
  }
  return out;
}

inline bool naive_is_gemma(const ModelConfig& c) { return c.model_type == "gemma2" || c.model_type == "gemma3_text"; }

// Layer types as transformers derives them: gemma2 alternates sliding/full, gemma3_text
// repeats five sliding and one full (unless config.json lists them); mistral slides everywhere.
inline bool naive_sliding(const ModelConfig& c, int64_t layer) {
  if (!c.sliding_window) return false;
  if (c.sliding_layers.empty()) return true;
  return c.sliding_layers[size_t(layer)];
}

// theta^(-2i/d), then rope scaling: linear divides by the factor; llama3 keeps short
// wavelengths, divides long ones by the factor and blends linearly in between.
// gemma3_text's sliding layers: default RoPE with the local base. phi3 rotates the first
// head_dim * partial_rotary_factor dims; LongRoPE divides by its short factors.
inline int64_t naive_rotary_dims(const ModelConfig& c) { return int64_t(double(c.head_dim) * c.partial_rotary_factor); }

inline std::vector<double> naive_inv_freq(const ModelConfig& c, bool local = false) {
  const int64_t dims = naive_rotary_dims(c);
  std::vector<double> f(dims / 2);
  const RopeScaling r = local ? RopeScaling{} : c.rope_scaling;
  const double theta = local ? *c.local_rope_theta : c.rope_theta;
  for (size_t i = 0; i < f.size(); ++i) {
    double freq = std::pow(theta, -2.0 * double(i) / double(dims));
    if (r.type == RopeScaling::Type::kLongRope) {
      freq /= r.short_factor[i];
    } else if (r.type == RopeScaling::Type::kLinear) {
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

// Rotates the first 2 * inv_freq.size() dims of the head vector at x[begin..] for `position`:
// pairs (i, i + half), the rest unchanged; `scale` multiplies cos and sin (LongRoPE).
inline void naive_rope(std::vector<double>& x, size_t begin, int64_t position, const std::vector<double>& inv_freq,
                       double scale = 1.0) {
  const size_t half = inv_freq.size();
  for (size_t i = 0; i < half; ++i) {
    const double angle = double(position) * inv_freq[i];
    const double a = x[begin + i], b = x[begin + i + half];
    x[begin + i] = scale * (a * std::cos(angle) - b * std::sin(angle));
    x[begin + i + half] = scale * (b * std::cos(angle) + a * std::sin(angle));
  }
}

inline Matrix naive_attention(const ModelConfig& c, Matrix q, Matrix k, const Matrix& v, int64_t offset,
                              const std::vector<int64_t>& query_rows, int64_t layer = 0) {
  const bool sliding = naive_sliding(c, layer);
  const std::vector<double> inv_freq = naive_inv_freq(c, sliding && c.local_rope_theta.has_value());
  const double scale = c.query_pre_attn_scalar ? 1.0 / std::sqrt(*c.query_pre_attn_scalar) : 1.0 / std::sqrt(double(c.head_dim));
  const double rope_scale =
      c.rope_scaling.type == RopeScaling::Type::kLongRope ? c.rope_scaling.attention_factor : 1.0;
  const int64_t tokens = int64_t(q.size()), d = c.head_dim, groups = c.n_heads / c.n_kv_heads;
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t h = 0; h < c.n_heads; ++h) naive_rope(q[t], h * d, offset + t, inv_freq, rope_scale);
    for (int64_t h = 0; h < c.n_kv_heads; ++h) naive_rope(k[t], h * d, offset + t, inv_freq, rope_scale);
  }
  Matrix out(tokens, std::vector<double>(c.n_heads * d, 0.0));
  for (int64_t t : query_rows) {
    for (int64_t h = 0; h < c.n_heads; ++h) {
      const int64_t kv = h / groups;
      std::vector<double> scores;
      std::vector<int64_t> keys;
      for (int64_t s = 0; s <= t; ++s) {
        if (sliding && t - s >= *c.sliding_window) continue;
        double dot = 0;
        for (int64_t i = 0; i < d; ++i) dot += q[t][h * d + i] * k[s][kv * d + i];
        double score = dot * scale;
        if (c.attn_logit_softcapping) score = *c.attn_logit_softcapping * std::tanh(score / *c.attn_logit_softcapping);
        scores.push_back(score);
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
  const bool gemma = naive_is_gemma(c);
  const bool phi3 = c.model_type == "phi3";
  // Columns [from, from + n) of every row.
  auto columns = [](const Matrix& m, size_t from, size_t n) {
    Matrix out;
    for (const auto& row : m) out.emplace_back(row.begin() + from, row.begin() + from + n);
    return out;
  };
  const Matrix normed = naive_norm(c, x, w.norm(NormKind::kInput));
  Matrix q, k, v;
  if (phi3) {  // qkv_proj's rows are [q; k; v]
    const Matrix qkv = lin(LinearKind::kQ, normed);
    q = columns(qkv, 0, c.q_size());
    k = columns(qkv, c.q_size(), c.kv_size());
    v = columns(qkv, c.q_size() + c.kv_size(), c.kv_size());
  } else {
    q = lin(LinearKind::kQ, normed);
    k = lin(LinearKind::kK, normed);
    v = lin(LinearKind::kV, normed);
  }
  if (!w.norm(NormKind::kQ).empty()) {
    q = naive_head_norm(c, q, w.norm(NormKind::kQ));
    k = naive_head_norm(c, k, w.norm(NormKind::kK));
  }
  Matrix o = lin(LinearKind::kO, naive_attention(c, q, k, v, offset, query_rows, w.index));
  if (gemma) o = naive_norm(c, o, w.norm(NormKind::kPostAttention));
  Matrix h = x;
  for (size_t t = 0; t < h.size(); ++t)
    for (size_t i = 0; i < h[t].size(); ++i) h[t][i] += o[t][i];
  const Matrix normed2 = naive_norm(c, h, w.norm(gemma ? NormKind::kPreFeedforward : NormKind::kPostAttention));
  Matrix gate, up;
  if (phi3) {  // gate_up_proj's rows are [gate; up]
    const Matrix gate_up = lin(LinearKind::kGate, normed2);
    gate = columns(gate_up, 0, c.intermediate_size);
    up = columns(gate_up, c.intermediate_size, c.intermediate_size);
  } else {
    gate = lin(LinearKind::kGate, normed2);
    up = lin(LinearKind::kUp, normed2);
  }
  Matrix act = gate;
  for (size_t t = 0; t < act.size(); ++t) {
    for (size_t i = 0; i < act[t].size(); ++i) {
      const double g = gate[t][i];
      // gelu_pytorch_tanh for gemma, SiLU otherwise.
      const double a = gemma ? 0.5 * g * (1 + std::tanh(std::sqrt(2 / M_PI) * (g + 0.044715 * g * g * g)))
                             : g / (1 + std::exp(-g));
      act[t][i] = a * up[t][i];
    }
  }
  Matrix down = lin(LinearKind::kDown, act);
  if (gemma) down = naive_norm(c, down, w.norm(NormKind::kPostFeedforward));
  for (size_t t = 0; t < h.size(); ++t)
    for (size_t i = 0; i < h[t].size(); ++i) h[t][i] += down[t][i];
  return h;
}

// Logits [tokens][vocab] of one sequence; taps (optional) receive each layer's linear inputs.
inline Matrix naive_logits(const NaiveModel& m, const std::vector<int64_t>& tokens, int64_t offset = 0,
                           std::vector<NaiveTaps>* taps = nullptr) {
  Matrix h;
  const double embed_scale = naive_is_gemma(m.config) ? std::sqrt(double(m.config.hidden_size)) : 1.0;
  for (int64_t id : tokens) {
    h.push_back(m.embed[id]);
    for (double& x : h.back()) x *= embed_scale;
  }
  if (taps) taps->assign(m.layers.size(), NaiveTaps{});
  for (size_t l = 0; l < m.layers.size(); ++l) {
    h = naive_layer(m.layers[l], m.config, h, offset, taps ? &(*taps)[l] : nullptr);
  }
  Matrix logits = naive_linear(naive_norm(m.config, h, m.norm), NaiveLinear{m.lm_head, {}});
  if (m.config.final_logit_softcapping) {
    const double cap = *m.config.final_logit_softcapping;
    for (auto& row : logits)
      for (double& x : row) x = cap * std::tanh(x / cap);
  }
  return logits;
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
