#include "core/model/decoder.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <limits>
#include <optional>

#include "core/common/error.h"
#include "core/model/rotary_kernel.h"

namespace pipeprune {
namespace {

// The llama3 smoothing of transformers' _compute_llama3_parameters, op for op in fp32
// (Python's `scalar / tensor` is reciprocal(tensor) * scalar).
at::Tensor apply_llama3_scaling(const at::Tensor& inv_freq, const RopeScaling& rope) {
  const double factor = rope.factor;
  const double old_context = static_cast<double>(rope.original_max_position_embeddings);
  const double low_freq_wavelen = old_context / rope.low_freq_factor;
  const double high_freq_wavelen = old_context / rope.high_freq_factor;

  const at::Tensor wavelen = at::reciprocal(inv_freq) * (2 * M_PI);
  at::Tensor scaled = at::where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq);
  const at::Tensor smooth = (at::reciprocal(wavelen) * old_context - rope.low_freq_factor) /
                            (rope.high_freq_factor - rope.low_freq_factor);
  const at::Tensor smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
  const at::Tensor medium =
      at::logical_not(wavelen < high_freq_wavelen).logical_and(at::logical_not(wavelen > low_freq_wavelen));
  return at::where(medium, smoothed, scaled);
}

at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// x: [B, T, heads, D] -> [B, heads, T, D] with the rotary embedding of cos/sin ([T, rotary])
// applied to its first `rotary` dims (phi3's partial_rotary_factor passes the rest through).
at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t rotary = cos.size(-1), head_dim = x.size(-1);
  // One pass, the same bits as the expression below (core/model/rotary_kernel.h).
  if (rotary == head_dim && rotate_cpu_applies(x, cos)) return rotate_cpu(x, cos, sin).transpose(1, 2);
  const at::Tensor t = x.transpose(1, 2);
  if (rotary == head_dim) return t * cos + rotate_half(t) * sin;
  const at::Tensor t_rot = t.narrow(-1, 0, rotary);
  return at::cat({t_rot * cos + rotate_half(t_rot) * sin, t.narrow(-1, rotary, head_dim - rotary)}, -1);
}

// Who sees the linears' inputs, and where the forward may stop: after the input of `last`
// (decoder_layer_linear_inputs), when one is given.
struct Taps {
  const LinearTap* tap = nullptr;
  std::optional<LinearKind> last;
  bool stopped = false;
};

// The linear's output, or an undefined tensor once the forward has stopped at its input.
at::Tensor run_linear(const Linear& linear, LinearKind kind, const at::Tensor& input, Taps& taps) {
  if (taps.stopped) return {};
  if (taps.tap != nullptr && *taps.tap) (*taps.tap)(kind, input);
  if (taps.last == kind) {
    taps.stopped = true;
    return {};
  }
  return at::linear(input, linear.weight, linear.bias);
}

// Grows the cache to hold `needed` positions, keeping what it holds.
void reserve_cache(LayerKVCache& cache, const at::Tensor& like, int64_t needed) {
  const int64_t capacity = cache.keys.defined() ? cache.keys.size(2) : 0;
  if (capacity >= needed) return;
  const int64_t new_capacity = std::max(needed, 2 * capacity);
  std::vector<int64_t> shape = like.sizes().vec();
  shape[2] = new_capacity;
  at::Tensor keys = at::empty(shape, like.options());
  at::Tensor values = at::empty(shape, like.options());
  if (cache.length > 0) {
    keys.narrow(2, 0, cache.length).copy_(cache.keys.narrow(2, 0, cache.length));
    values.narrow(2, 0, cache.length).copy_(cache.values.narrow(2, 0, cache.length));
  }
  cache.keys = std::move(keys);
  cache.values = std::move(values);
}

// True where a query may NOT look at a key: [tokens, n_keys], or undefined when nothing is masked.
at::Tensor attention_mask(const ModelConfig& config, bool sliding, int64_t tokens, int64_t n_keys,
                          int64_t query_start, int64_t key_start, c10::Device device) {
  const bool window = sliding && query_start + tokens - key_start > *config.sliding_window;
  if (tokens == 1 && query_start >= key_start + n_keys - 1 && !window) return {};
  const auto options = at::TensorOptions().dtype(at::kLong).device(device);
  const at::Tensor query_pos = at::arange(query_start, query_start + tokens, options).unsqueeze(1);
  const at::Tensor key_pos = at::arange(key_start, key_start + n_keys, options).unsqueeze(0);
  at::Tensor masked = key_pos > query_pos;
  if (window) masked = masked.logical_or(query_pos - key_pos >= *config.sliding_window);
  return masked;
}

// q: [B, n_heads, T, D]; keys/values: [B, n_kv, S, D]. Returns [B, T, n_heads * D].
at::Tensor attend(const ModelConfig& config, const at::Tensor& q, const at::Tensor& keys,
                  const at::Tensor& values, const at::Tensor& masked) {
  const int64_t batch = q.size(0), tokens = q.size(2), head_dim = q.size(3);
  const int64_t n_keys = keys.size(2), groups = config.n_kv_groups();
  // Query heads kv*groups .. kv*groups+groups-1 share KV head kv (transformers' repeat_kv), so
  // grouping them as rows of one matrix per KV head avoids copying keys and values.
  const at::Tensor q_grouped = q.reshape({batch, config.n_kv_heads, groups * tokens, head_dim});
  const int64_t bytes_per_kv_head = batch * groups * tokens * n_keys * 4;
  const int64_t chunk = std::max<int64_t>(1, kAttentionChunkBytes / std::max<int64_t>(1, bytes_per_kv_head));
  const double scale = std::sqrt(static_cast<double>(head_dim));
  std::vector<at::Tensor> outputs;
  for (int64_t h0 = 0; h0 < config.n_kv_heads; h0 += chunk) {
    const int64_t n = std::min(chunk, config.n_kv_heads - h0);
    at::Tensor scores = at::matmul(q_grouped.narrow(1, h0, n), keys.narrow(1, h0, n).transpose(2, 3));
    // gemma multiplies by query_pre_attn_scalar^-0.5 (as transformers does); the others divide.
    // In place: the same kernels as the out-of-place ops, without a fresh tensor of the scores.
    if (config.query_pre_attn_scalar) {
      scores.mul_(std::pow(*config.query_pre_attn_scalar, -0.5));
    } else {
      scores.div_(scale);
    }
    if (config.attn_logit_softcapping) {
      scores.div_(*config.attn_logit_softcapping).tanh_().mul_(*config.attn_logit_softcapping);
    }
    if (masked.defined()) {
      scores = scores.view({batch, n * groups, tokens, n_keys});
      scores.masked_fill_(masked, -std::numeric_limits<double>::infinity());
      scores = scores.view({batch, n, groups * tokens, n_keys});
    }
    at::Tensor probs;
    if (scores.is_cpu() && scores.scalar_type() == at::kFloat && scores.is_contiguous()) {
      // ATen's CPU softmax reads each element of a row before it writes that element, so it
      // may overwrite its input: the same bits without another tensor of the scores' size.
      probs = at::_softmax_out(scores, scores, -1, /*half_to_float=*/false);
    } else {
      probs = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
    }
    outputs.push_back(at::matmul(probs, values.narrow(1, h0, n)));
  }
  const at::Tensor out = outputs.size() == 1 ? outputs[0] : at::cat(outputs, 1);
  // [B, n_kv, G*T, D] -> [B, n_heads, T, D] -> [B, T, n_heads * D]
  return out.view({batch, config.n_heads, tokens, head_dim})
      .transpose(1, 2)
      .reshape({batch, tokens, config.n_heads * head_dim});
}

at::Tensor attention_block(const DecoderLayerWeights& w, const ModelConfig& config,
                           const RopeTables& rope, const at::Tensor& x, int64_t position_offset,
                           LayerKVCache* cache, Taps& taps) {
  const int64_t batch = x.size(0), tokens = x.size(1), head_dim = config.head_dim;
  PIPEPRUNE_CHECK(position_offset >= 0 && position_offset + tokens <= rope.n_positions(), Error,
                  "positions " << position_offset << ".." << position_offset + tokens - 1
                               << " exceed the rotary tables (" << rope.n_positions()
                               << " positions); make_rope_tables() with more positions");
  at::Tensor q, k, v;
  if (config.fused_projections) {  // phi3: one qkv_proj, its rows [q; k; v]
    const at::Tensor qkv = run_linear(w[LinearKind::kQ], LinearKind::kQ, x, taps);
    if (taps.stopped) return {};
    q = qkv.narrow(-1, 0, config.q_size());
    k = qkv.narrow(-1, config.q_size(), config.kv_size());
    v = qkv.narrow(-1, config.q_size() + config.kv_size(), config.kv_size());
  } else {
    q = run_linear(w[LinearKind::kQ], LinearKind::kQ, x, taps);
    k = run_linear(w[LinearKind::kK], LinearKind::kK, x, taps);
    v = run_linear(w[LinearKind::kV], LinearKind::kV, x, taps);
    if (taps.stopped) return {};
  }
  q = q.reshape({batch, tokens, config.n_heads, head_dim});
  k = k.reshape({batch, tokens, config.n_kv_heads, head_dim});
  if (config.qk_norm) {  // over head_dim, per head, before RoPE
    q = rms_norm(config, q, w.norm(NormKind::kQ));
    k = rms_norm(config, k, w.norm(NormKind::kK));
  }
  v = v.reshape({batch, tokens, config.n_kv_heads, head_dim}).transpose(1, 2);

  // transformers casts cos/sin to the activations' dtype before applying them.
  const bool sliding = config.layer_is_sliding(w.layer);
  const bool local = sliding && rope.local_cos.defined();
  const at::Tensor& cos_table = local ? rope.local_cos : rope.cos;
  const at::Tensor& sin_table = local ? rope.local_sin : rope.sin;
  const at::Tensor cos = cos_table.narrow(0, position_offset, tokens).to(x.device(), x.scalar_type());
  const at::Tensor sin = sin_table.narrow(0, position_offset, tokens).to(x.device(), x.scalar_type());
  q = apply_rotary(q, cos, sin);
  k = apply_rotary(k, cos, sin);

  at::Tensor keys = k, values = v;
  int64_t key_start = position_offset;
  if (cache != nullptr) {
    PIPEPRUNE_CHECK(cache->length == position_offset, Error,
                    "KV cache holds " << cache->length << " positions but position_offset is "
                                      << position_offset << "; they must be equal");
    PIPEPRUNE_CHECK(cache->length == 0 || cache->keys.size(0) == batch, Error,
                    "KV cache batch " << cache->keys.size(0) << " differs from the input batch " << batch);
    reserve_cache(*cache, k, cache->length + tokens);
    cache->keys.narrow(2, cache->length, tokens).copy_(k);
    cache->values.narrow(2, cache->length, tokens).copy_(v);
    cache->length += tokens;
    keys = cache->keys.narrow(2, 0, cache->length);
    values = cache->values.narrow(2, 0, cache->length);
    key_start = 0;
  }
  const at::Tensor masked =
      attention_mask(config, sliding, tokens, keys.size(2), position_offset, key_start, x.device());
  const at::Tensor attn = attend(config, q, keys, values, masked);
  return run_linear(w[LinearKind::kO], LinearKind::kO, attn, taps);
}

at::Tensor mlp_block(const DecoderLayerWeights& w, const ModelConfig& config, const at::Tensor& x, Taps& taps) {
  at::Tensor gate, up;
  if (config.fused_projections) {  // phi3: gate_up_proj, gate first
    const at::Tensor gate_up = run_linear(w[LinearKind::kGate], LinearKind::kGate, x, taps);
    if (taps.stopped) return {};
    gate = gate_up.narrow(-1, 0, config.intermediate_size);
    up = gate_up.narrow(-1, config.intermediate_size, config.intermediate_size);
  } else {
    gate = run_linear(w[LinearKind::kGate], LinearKind::kGate, x, taps);
    up = run_linear(w[LinearKind::kUp], LinearKind::kUp, x, taps);
    if (taps.stopped) return {};
  }
  // In place: act(gate) * up is the largest activation of the layer.
  if (config.activation == Activation::kGeluTanh) {
    at::gelu_(gate, "tanh");
  } else {
    at::silu_(gate);
  }
  gate.mul_(up);
  return run_linear(w[LinearKind::kDown], LinearKind::kDown, gate, taps);
}

}  // namespace

int64_t RopeTables::n_positions() const { return cos.defined() ? cos.size(0) : 0; }

at::Tensor rope_inverse_frequencies(const ModelConfig& config) {
  c10::InferenceMode guard;
  const int64_t dim = config.rotary_dim();
  // transformers: 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim)),
  // where `base ** t` is a float32 0-dim tensor raised to t and `1.0 / t` is reciprocal(t).
  const at::Tensor exponent = at::arange(0, dim, 2, at::kLong).to(at::kFloat) / dim;
  const at::Tensor powers = at::pow(at::scalar_tensor(config.rope_theta, at::kFloat), exponent);
  if (config.rope_scaling.type == RopeScaling::Type::kLongRope) {
    // 1.0 / (ext_factors * base ** t) with the short factors as an fp32 tensor.
    const at::Tensor factors = at::tensor(config.rope_scaling.short_factor, at::kDouble).to(at::kFloat);
    return at::reciprocal(factors * powers);
  }
  at::Tensor inv_freq = at::reciprocal(powers);
  switch (config.rope_scaling.type) {
    case RopeScaling::Type::kNone: break;
    case RopeScaling::Type::kLinear: inv_freq.div_(config.rope_scaling.factor); break;
    case RopeScaling::Type::kLlama3: inv_freq = apply_llama3_scaling(inv_freq, config.rope_scaling); break;
    case RopeScaling::Type::kLongRope: break;  // returned above
  }
  return inv_freq;
}

namespace {

std::pair<at::Tensor, at::Tensor> cos_sin(const ModelConfig& config, int64_t n_positions, c10::Device device) {
  const at::Tensor inv_freq = rope_inverse_frequencies(config).to(device);
  const at::Tensor positions = at::arange(n_positions, at::TensorOptions().dtype(at::kLong).device(device)).to(at::kFloat);
  // freqs[p, i] = position p * inv_freq i, one fp32 product as transformers' K=1 matmul gives.
  const at::Tensor freqs = at::outer(positions, inv_freq);
  const at::Tensor emb = at::cat({freqs, freqs}, -1);
  if (config.rope_scaling.type == RopeScaling::Type::kLongRope) {
    const double scale = config.rope_scaling.attention_factor;
    return {emb.cos() * scale, emb.sin() * scale};
  }
  return {emb.cos(), emb.sin()};
}

}  // namespace

RopeTables make_rope_tables(const ModelConfig& config, int64_t n_positions, c10::Device device) {
  c10::InferenceMode guard;
  const RopeScaling& rope = config.rope_scaling;
  // transformers switches every position to LongRoPE's long factors once a sequence passes the
  // original context; pipeprune implements the short factors only.
  PIPEPRUNE_CHECK(rope.type != RopeScaling::Type::kLongRope || n_positions <= rope.original_max_position_embeddings,
                  ConfigError,
                  n_positions << " positions exceed this phi3 model's original_max_position_embeddings ("
                              << rope.original_max_position_embeddings
                              << "), beyond which LongRoPE uses its long factors, which pipeprune does not "
                                 "implement; use a --seqlen (or prompt plus --max-new-tokens) of at most "
                              << rope.original_max_position_embeddings);
  RopeTables tables;
  std::tie(tables.cos, tables.sin) = cos_sin(config, n_positions, device);
  if (config.local_rope_theta) {
    std::tie(tables.local_cos, tables.local_sin) = cos_sin(config.local_rope_config(), n_positions, device);
  }
  return tables;
}

namespace {

// x in fp32 times rsqrt(mean(x^2) + eps), the part every family's RMSNorm shares.
at::Tensor normalized_fp32(const at::Tensor& x, double eps) {
  const at::Tensor h = x.to(at::kFloat);
  return h * at::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + eps);
}

}  // namespace

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  c10::InferenceMode guard;
  return weight * normalized_fp32(x, eps).to(x.scalar_type());
}

at::Tensor rms_norm(const ModelConfig& config, const at::Tensor& x, const at::Tensor& weight) {
  if (!config.norm_plus_one) return rms_norm(x, weight, config.rms_norm_eps);
  c10::InferenceMode guard;
  // Gemma: (normed * (1 + w)) in fp32, cast last (transformers' Gemma2RMSNorm/Gemma3RMSNorm).
  return (normalized_fp32(x, config.rms_norm_eps) * (1.0 + weight.to(at::kFloat))).to(x.scalar_type());
}

at::Tensor scale_embeddings(const ModelConfig& config, const at::Tensor& embedded) {
  if (!config.scale_embeddings) return embedded;
  c10::InferenceMode guard;
  // transformers: embeddings * torch.tensor(hidden_size ** 0.5) cast to the weights' dtype.
  const at::Tensor scale = at::scalar_tensor(std::sqrt(static_cast<double>(config.hidden_size)), at::kFloat)
                               .to(embedded.device(), embedded.scalar_type());
  return embedded * scale;
}

int64_t decoder_layer_scratch_bytes(const ModelConfig& config, int64_t batch, int64_t tokens,
                                    int64_t n_keys, c10::ScalarType dtype) {
  const int64_t elt = static_cast<int64_t>(c10::elementSize(dtype));
  const int64_t rows = batch * tokens;
  // normed input, q/k/v and their rotated copies, attention output and its reshaped copy.
  const int64_t attention = rows * elt * (config.hidden_size + 3 * (config.q_size() + 2 * config.kv_size()) +
                                          2 * config.q_size());
  // One chunk of scores (scaled in place). fp32: the scores and, on CUDA, the softmax's output
  // (on the CPU it overwrites the scores; counted anyway, the device is not known here). Other
  // dtypes: the scores, their fp32 copy and fp32 softmax, and the probabilities in dtype.
  const int64_t per_kv_head = batch * config.n_kv_groups() * tokens * n_keys * 4;
  const int64_t chunk = std::min(config.n_kv_heads, std::max<int64_t>(1, kAttentionChunkBytes / std::max<int64_t>(1, per_kv_head)));
  const int64_t scores = (dtype == at::kFloat ? 2 : 4) * chunk * per_kv_head;
  // normed input, gate (act*up in place), up, down output, residual sum.
  int64_t mlp = rows * elt * (2 * config.hidden_size + 2 * config.intermediate_size + config.hidden_size);
  // gemma: the normed attention and MLP outputs (fp32 and cast); q/k norms: q and k in fp32.
  if (config.sandwich_norms) mlp += rows * 4 * 2 * config.hidden_size;
  const int64_t qk_norms = config.qk_norm ? rows * 4 * 2 * (config.q_size() + config.kv_size()) : 0;
  return attention + scores + mlp + qk_norms;
}

namespace {

// decoder_layer_forward, or undefined once `taps` stops the forward at a linear's input.
at::Tensor layer_forward(const DecoderLayerWeights& weights, const ModelConfig& config, const RopeTables& rope,
                         const at::Tensor& hidden, int64_t position_offset, LayerKVCache* cache, Taps& taps) {
  c10::InferenceMode guard;
  PIPEPRUNE_CHECK(hidden.dim() == 3 && hidden.size(2) == config.hidden_size, Error,
                  "decoder layer " << weights.layer << ": input has shape " << hidden.sizes()
                                   << ", expected [batch, tokens, " << config.hidden_size << "]");
  PIPEPRUNE_CHECK(hidden.scalar_type() == weights[LinearKind::kQ].weight.scalar_type(), Error,
                  "decoder layer " << weights.layer << ": input is " << hidden.scalar_type() << " but the weights are "
                                   << weights[LinearKind::kQ].weight.scalar_type()
                                   << "; bring both to the compute dtype (to_compute())");
  const at::Tensor normed = rms_norm(config, hidden, weights.norm(NormKind::kInput));
  at::Tensor attention = attention_block(weights, config, rope, normed, position_offset, cache, taps);
  if (taps.stopped) return {};
  if (!config.sandwich_norms) {
    at::Tensor h = hidden + attention;
    const at::Tensor normed2 = rms_norm(config, h, weights.norm(NormKind::kPostAttention));
    const at::Tensor mlp = mlp_block(weights, config, normed2, taps);
    if (taps.stopped) return {};
    h.add_(mlp);
    return h;
  }
  // gemma: each block's output is normed before its residual add.
  at::Tensor h = hidden + rms_norm(config, attention, weights.norm(NormKind::kPostAttention));
  const at::Tensor normed2 = rms_norm(config, h, weights.norm(NormKind::kPreFeedforward));
  const at::Tensor mlp = mlp_block(weights, config, normed2, taps);
  if (taps.stopped) return {};
  h.add_(rms_norm(config, mlp, weights.norm(NormKind::kPostFeedforward)));
  return h;
}

}  // namespace

at::Tensor decoder_layer_forward(const DecoderLayerWeights& weights, const ModelConfig& config,
                                 const RopeTables& rope, const at::Tensor& hidden,
                                 int64_t position_offset, LayerKVCache* cache, const LinearTap* tap) {
  Taps taps{tap, std::nullopt};
  return layer_forward(weights, config, rope, hidden, position_offset, cache, taps);
}

void decoder_layer_linear_inputs(const DecoderLayerWeights& weights, const ModelConfig& config,
                                 const RopeTables& rope, const at::Tensor& hidden, const LinearTap& tap,
                                 LinearKind last) {
  Taps taps{&tap, last};
  layer_forward(weights, config, rope, hidden, 0, nullptr, taps);
  PIPEPRUNE_CHECK(taps.stopped, Error,
                  "decoder layer " << weights.layer << ": the forward never reached the input of "
                                   << linear_short_name(config, last));
}

at::Tensor embed_tokens(const EmbeddingWeights& weights, const at::Tensor& tokens) {
  c10::InferenceMode guard;
  PIPEPRUNE_CHECK(tokens.scalar_type() == at::kLong && tokens.dim() == 2, Error,
                  "token ids must be an int64 tensor [batch, tokens], got " << tokens.scalar_type()
                                                                            << " " << tokens.sizes());
  const int64_t vocab = weights.embed_tokens.size(0);
  if (tokens.numel() > 0) {
    const int64_t lo = tokens.min().item<int64_t>(), hi = tokens.max().item<int64_t>();
    PIPEPRUNE_CHECK(lo >= 0 && hi < vocab, Error,
                    "token id " << (lo < 0 ? lo : hi) << " is outside the vocabulary [0, " << vocab
                                << "); was the text tokenized with this model's tokenizer?");
  }
  return at::embedding(weights.embed_tokens, tokens.to(weights.embed_tokens.device()));
}

at::Tensor head_forward(const HeadWeights& weights, const ModelConfig& config, const at::Tensor& hidden) {
  c10::InferenceMode guard;
  at::Tensor logits = at::linear(rms_norm(config, hidden, weights.norm), weights.lm_head);
  if (config.final_logit_softcapping) {
    const double cap = *config.final_logit_softcapping;
    logits = at::tanh(logits / cap) * cap;
  }
  return logits;
}

}  // namespace pipeprune
