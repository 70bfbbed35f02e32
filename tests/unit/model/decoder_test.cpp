#include "core/model/decoder.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <vector>

#include "core/common/error.h"
#include "unit/model/naive_decoder.h"
#include "unit/model/tiny_model.h"

namespace pipeprune {

// Readable test parameters in gtest output.
void PrintTo(const ModelConfig& config, std::ostream* os) { *os << config.to_json().dump(); }

namespace {

using testing::Matrix;
using testing::TinyModel;

const c10::Device kCpu(c10::kCPU);

// Full-sequence forward of a tiny model through the library.
at::Tensor library_logits(const TinyModel& m, const at::Tensor& tokens, int64_t offset = 0,
                          const LinearTap* tap = nullptr) {
  const RopeTables rope = make_rope_tables(m.config, offset + tokens.size(1), kCpu);
  at::Tensor h = scale_embeddings(m.config, embed_tokens(m.embedding, tokens));
  for (const DecoderLayerWeights& layer : m.layers) {
    h = decoder_layer_forward(layer, m.config, rope, h, offset, nullptr, tap);
  }
  return head_forward(m.head, m.config, h);
}

at::Tensor naive_batch_logits(const TinyModel& m, const at::Tensor& tokens, int64_t offset = 0) {
  const testing::NaiveModel naive = testing::to_naive(m);
  std::vector<Matrix> out;
  for (int64_t b = 0; b < tokens.size(0); ++b) {
    out.push_back(testing::naive_logits(naive, testing::row_tokens(tokens, b), offset));
  }
  return testing::to_tensor(out);
}

class DecoderVariants : public ::testing::TestWithParam<std::pair<std::string, ModelConfig>> {};

TEST_P(DecoderVariants, RopeInverseFrequencies_MatchFormulas) {
  const ModelConfig& config = GetParam().second;
  const at::Tensor inv_freq = rope_inverse_frequencies(config);
  ASSERT_EQ(inv_freq.scalar_type(), at::kFloat);
  const std::vector<double> expected = testing::naive_inv_freq(config);
  ASSERT_EQ(inv_freq.numel(), int64_t(expected.size()));
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_NEAR(inv_freq[i].item<double>(), expected[i], 1e-6 * expected[i]) << "frequency " << i;
  }
}

TEST_P(DecoderVariants, RopeTables_HalfFrequenciesRepeatedTwice) {
  const ModelConfig& config = GetParam().second;
  const RopeTables rope = make_rope_tables(config, 50, kCpu);
  ASSERT_EQ(rope.n_positions(), 50);
  // phi3 rotates int(head_dim * partial_rotary_factor) dims, LongRoPE scales cos and sin.
  const int64_t dims = testing::naive_rotary_dims(config);
  ASSERT_EQ(rope.cos.sizes(), (at::IntArrayRef{50, dims}));
  const std::vector<double> inv_freq = testing::naive_inv_freq(config);
  const double scale =
      config.rope_scaling.type == RopeScaling::Type::kLongRope ? config.rope_scaling.attention_factor : 1.0;
  const int64_t half = dims / 2;
  for (int64_t p : {0, 1, 17, 49}) {
    for (int64_t i = 0; i < half; ++i) {
      const double angle = double(p) * inv_freq[i];
      EXPECT_NEAR(rope.cos[p][i].item<double>(), scale * std::cos(angle), 1e-5);
      EXPECT_NEAR(rope.sin[p][i].item<double>(), scale * std::sin(angle), 1e-5);
      EXPECT_EQ(rope.cos[p][i].item<float>(), rope.cos[p][i + half].item<float>());
      EXPECT_EQ(rope.sin[p][i].item<float>(), rope.sin[p][i + half].item<float>());
    }
  }
  // gemma3_text: a second table for the sliding layers, with the local base and no scaling.
  ASSERT_EQ(rope.local_cos.defined(), config.local_rope_theta.has_value());
  if (!config.local_rope_theta) return;
  const std::vector<double> local = testing::naive_inv_freq(config, /*local=*/true);
  for (int64_t i = 0; i < half; ++i) {
    EXPECT_NEAR(rope.local_cos[17][i].item<double>(), std::cos(17 * local[i]), 1e-5);
    EXPECT_NEAR(rope.local_sin[17][i].item<double>(), std::sin(17 * local[i]), 1e-5);
  }
}

TEST_P(DecoderVariants, Forward_MatchesNaiveReference) {
  const TinyModel m = testing::make_tiny_model(GetParam().second, 11);
  const at::Tensor tokens = testing::random_tokens(12, 2, 7, m.config.vocab_size);
  const at::Tensor logits = library_logits(m, tokens);
  ASSERT_EQ(logits.sizes(), (at::IntArrayRef{2, 7, m.config.vocab_size}));
  EXPECT_LT(testing::max_relative_error(logits, naive_batch_logits(m, tokens)), 1e-5);
}

TEST_P(DecoderVariants, ForwardAtPositionOffset_MatchesNaiveReference) {
  const TinyModel m = testing::make_tiny_model(GetParam().second, 13);
  const at::Tensor tokens = testing::random_tokens(14, 1, 6, m.config.vocab_size);
  const at::Tensor logits = library_logits(m, tokens, /*offset=*/5);
  EXPECT_LT(testing::max_relative_error(logits, naive_batch_logits(m, tokens, 5)), 1e-5);
  // Rotary embeddings encode relative positions: shifting every query and key by the same
  // offset leaves the attention scores unchanged.
  EXPECT_LT(testing::max_relative_error(logits, library_logits(m, tokens, 0)), 1e-5);
}

// Feeds `tokens` through the layers `chunk` tokens at a time with KV caches; returns the
// logits of every position.
at::Tensor cached_logits(const TinyModel& m, const at::Tensor& tokens, const std::vector<int64_t>& chunks) {
  const RopeTables rope = make_rope_tables(m.config, tokens.size(1), kCpu);
  std::vector<LayerKVCache> caches(m.layers.size());
  std::vector<at::Tensor> outputs;
  int64_t position = 0;
  for (int64_t chunk : chunks) {
    at::Tensor h = scale_embeddings(m.config, embed_tokens(m.embedding, tokens.narrow(1, position, chunk)));
    for (size_t l = 0; l < m.layers.size(); ++l) {
      h = decoder_layer_forward(m.layers[l], m.config, rope, h, position, &caches[l]);
    }
    outputs.push_back(head_forward(m.head, m.config, h));
    position += chunk;
  }
  for (const LayerKVCache& cache : caches) EXPECT_EQ(cache.length, tokens.size(1));
  return at::cat(outputs, 1);
}

TEST_P(DecoderVariants, KvCacheTokenByToken_EqualsFullSequence) {
  const TinyModel m = testing::make_tiny_model(GetParam().second, 15);
  const at::Tensor tokens = testing::random_tokens(16, 2, 9, m.config.vocab_size);
  const at::Tensor full = library_logits(m, tokens);
  const at::Tensor one_by_one = cached_logits(m, tokens, std::vector<int64_t>(9, 1));
  EXPECT_LT(testing::max_relative_error(one_by_one, full), 1e-5);
  EXPECT_LT(testing::max_relative_error(one_by_one.select(1, 8), full.select(1, 8)), 1e-5);
  const at::Tensor chunked = cached_logits(m, tokens, {3, 1, 4, 1});
  EXPECT_LT(testing::max_relative_error(chunked, full), 1e-5);
}

TEST_P(DecoderVariants, Taps_SeeExactLinearInputsInOrder) {
  const TinyModel m = testing::make_tiny_model(GetParam().second, 17);
  const at::Tensor tokens = testing::random_tokens(18, 2, 5, m.config.vocab_size);
  std::vector<std::pair<LinearKind, at::Tensor>> seen;
  const LinearTap tap = [&](LinearKind kind, const at::Tensor& input) { seen.emplace_back(kind, input.clone()); };
  library_logits(m, tokens, 0, &tap);
  const std::vector<LinearKind> linears = layer_linears(m.config);
  const size_t n = linears.size();
  ASSERT_EQ(seen.size(), n * size_t(m.config.n_layers));

  const testing::NaiveModel naive = testing::to_naive(m);
  std::vector<std::vector<testing::NaiveTaps>> naive_taps(2);  // [batch][layer]
  for (int64_t b = 0; b < 2; ++b) testing::naive_logits(naive, testing::row_tokens(tokens, b), 0, &naive_taps[b]);
  for (int64_t l = 0; l < m.config.n_layers; ++l) {
    for (size_t k = 0; k < n; ++k) {
      const auto& [kind, input] = seen[l * n + k];
      ASSERT_EQ(kind, linears[k]) << "layer " << l << " call " << k;
      const int64_t in_features = linear_shape(m.config, kind)[1];
      ASSERT_EQ(input.sizes(), (at::IntArrayRef{2, 5, in_features})) << linear_short_name(m.config, kind);
      const int i = static_cast<int>(kind);
      const at::Tensor expected = testing::to_tensor({naive_taps[0][l][i], naive_taps[1][l][i]});
      EXPECT_LT(testing::max_relative_error(input, expected), 1e-4)
          << "layer " << l << " " << linear_short_name(m.config, kind);
    }
    if (m.config.fused_projections) continue;
    // q, k and v share one input, as do gate and up.
    const auto& layer_seen = std::vector<std::pair<LinearKind, at::Tensor>>(seen.begin() + l * n, seen.begin() + (l + 1) * n);
    EXPECT_TRUE(at::equal(layer_seen[0].second, layer_seen[1].second));
    EXPECT_TRUE(at::equal(layer_seen[0].second, layer_seen[2].second));
    EXPECT_TRUE(at::equal(layer_seen[4].second, layer_seen[5].second));
  }
}

// decoder_layer_linear_inputs stops at the input of `last`: its tap sees exactly the inputs the
// full forward's tap sees up to that one, bit for bit, and none after it.
TEST_P(DecoderVariants, LinearInputsOnly_SameTapsUpToLastThenStops) {
  const TinyModel m = testing::make_tiny_model(GetParam().second, 23);
  const at::Tensor tokens = testing::random_tokens(24, 1, 6, m.config.vocab_size);
  const RopeTables rope = make_rope_tables(m.config, tokens.size(1), kCpu);
  const at::Tensor hidden = scale_embeddings(m.config, embed_tokens(m.embedding, tokens));
  const DecoderLayerWeights& layer = m.layers[0];
  std::vector<std::pair<LinearKind, at::Tensor>> full;
  const LinearTap full_tap = [&](LinearKind kind, const at::Tensor& input) { full.emplace_back(kind, input.clone()); };
  decoder_layer_forward(layer, m.config, rope, hidden, 0, nullptr, &full_tap);
  const std::vector<LinearKind> linears = layer_linears(m.config);
  for (size_t last = 0; last < linears.size(); ++last) {
    std::vector<std::pair<LinearKind, at::Tensor>> seen;
    const LinearTap tap = [&](LinearKind kind, const at::Tensor& input) { seen.emplace_back(kind, input.clone()); };
    decoder_layer_linear_inputs(layer, m.config, rope, hidden, tap, linears[last]);
    ASSERT_EQ(seen.size(), last + 1) << linear_short_name(m.config, linears[last]);
    for (size_t k = 0; k <= last; ++k) {
      EXPECT_EQ(seen[k].first, full[k].first);
      EXPECT_TRUE(at::equal(seen[k].second, full[k].second)) << linear_short_name(m.config, seen[k].first);
    }
  }
}

TEST_P(DecoderVariants, Bf16Compute_CloseToFp32) {
  const TinyModel m = testing::make_tiny_model(GetParam().second, 19);
  TinyModel bf16 = m;
  bf16.embedding = to_compute(m.embedding, kCpu, at::kBFloat16);
  for (auto& layer : bf16.layers) layer = to_compute(layer, kCpu, at::kBFloat16);
  bf16.head = to_compute(m.head, kCpu, at::kBFloat16);
  const at::Tensor tokens = testing::random_tokens(20, 2, 6, m.config.vocab_size);
  const at::Tensor logits = library_logits(bf16, tokens);
  EXPECT_EQ(logits.scalar_type(), at::kBFloat16);
  const double error = testing::max_relative_error(logits, library_logits(m, tokens));
  EXPECT_LT(error, 0.05);
  EXPECT_GT(error, 0.0);  // it really ran in bf16
  // The cached path runs in bf16 too.
  const at::Tensor cached = cached_logits(bf16, tokens, {2, 1, 3});
  EXPECT_EQ(cached.scalar_type(), at::kBFloat16);
  EXPECT_LT(testing::max_relative_error(cached, logits), 0.05);
}

INSTANTIATE_TEST_SUITE_P(Model, DecoderVariants, ::testing::ValuesIn(testing::tiny_config_variants()),
                         [](const auto& info) { return info.param.first; });

const ModelConfig& variant(const std::string& label) {
  static const auto variants = testing::tiny_config_variants();
  for (const auto& [name, config] : variants) {
    if (name == label) return config;
  }
  throw std::runtime_error("no variant " + label);
}

// Each family feature changes the logits well beyond the reference tolerance, so the naive
// comparison above would catch it missing.
TEST(Decoder, FamilyFeatures_EachChangesTheLogits) {
  const at::Tensor tokens = testing::random_tokens(30, 1, 8, 40);
  // The same weights run under the base config and under one with a feature turned off.
  auto changes = [&](const ModelConfig& base, const ModelConfig& changed) {
    const TinyModel m = testing::make_tiny_model(base, 31);
    TinyModel other = m;
    other.config = changed;
    return testing::max_relative_error(library_logits(m, tokens), library_logits(other, tokens)) > 1e-3;
  };
  const ModelConfig gemma2 = variant("gemma2_softcap_sliding");
  ModelConfig no_cap = gemma2;
  no_cap.attn_logit_softcapping.reset();
  EXPECT_TRUE(changes(gemma2, no_cap));
  ModelConfig no_final_cap = gemma2;
  no_final_cap.final_logit_softcapping.reset();
  EXPECT_TRUE(changes(gemma2, no_final_cap));
  ModelConfig no_window = gemma2;
  no_window.sliding_layers.assign(2, false);
  EXPECT_TRUE(changes(gemma2, no_window));
  ModelConfig head_dim_scale = gemma2;
  head_dim_scale.query_pre_attn_scalar.reset();
  EXPECT_TRUE(changes(gemma2, head_dim_scale));
  const ModelConfig gemma3 = variant("gemma3_local_rope_qk_norm");
  ModelConfig one_base = gemma3;
  one_base.local_rope_theta.reset();
  EXPECT_TRUE(changes(gemma3, one_base));
  ModelConfig gemma_norm_off = gemma3;
  gemma_norm_off.norm_plus_one = false;
  EXPECT_TRUE(changes(gemma3, gemma_norm_off));
}

// phi3's fused qkv_proj and gate_up_proj read the same input as the split q/k/v and gate/up
// of a Llama with those rows: the tapped inputs (hence Wanda's column norms and SparseGPT's
// Hessian, both functions of that input alone) and the logits are the same.
TEST(Decoder, FusedProjections_SameInputsAndLogitsAsTheSplitTwin) {
  ModelConfig phi3 = variant("phi3_fused_partial_longrope");
  phi3.rope_scaling = RopeScaling{};  // the twin is a plain Llama
  phi3.partial_rotary_factor = 1.0;
  const TinyModel fused = testing::make_tiny_model(phi3, 41);
  TinyModel split = fused;
  split.config.model_type = "llama";
  split.config.fused_projections = false;
  for (DecoderLayerWeights& layer : split.layers) {
    const at::Tensor qkv = layer[LinearKind::kQ].weight, gate_up = layer[LinearKind::kGate].weight;
    layer[LinearKind::kQ].weight = qkv.narrow(0, 0, phi3.q_size()).clone();
    layer[LinearKind::kK].weight = qkv.narrow(0, phi3.q_size(), phi3.kv_size()).clone();
    layer[LinearKind::kV].weight = qkv.narrow(0, phi3.q_size() + phi3.kv_size(), phi3.kv_size()).clone();
    layer[LinearKind::kGate].weight = gate_up.narrow(0, 0, phi3.intermediate_size).clone();
    layer[LinearKind::kUp].weight = gate_up.narrow(0, phi3.intermediate_size, phi3.intermediate_size).clone();
  }
  const at::Tensor tokens = testing::random_tokens(42, 2, 7, phi3.vocab_size);
  std::map<std::pair<int, int>, at::Tensor> fused_inputs, split_inputs;
  int fused_calls = 0, split_calls = 0;
  const LinearTap fused_tap = [&](LinearKind kind, const at::Tensor& input) {
    fused_inputs[{fused_calls++ / 4, int(kind)}] = input.clone();
  };
  const LinearTap split_tap = [&](LinearKind kind, const at::Tensor& input) {
    split_inputs[{split_calls++ / 7, int(kind)}] = input.clone();
  };
  const at::Tensor a = library_logits(fused, tokens, 0, &fused_tap), b = library_logits(split, tokens, 0, &split_tap);
  EXPECT_LT(testing::max_relative_error(a, b), 1e-6);
  ASSERT_EQ(fused_inputs.size(), 4u * phi3.n_layers);
  for (int l = 0; l < phi3.n_layers; ++l) {
    for (LinearKind kind : {LinearKind::kQ, LinearKind::kO, LinearKind::kGate, LinearKind::kDown}) {
      EXPECT_LT(testing::max_relative_error(fused_inputs.at({l, int(kind)}), split_inputs.at({l, int(kind)})), 1e-6)
          << "layer " << l << " " << linear_short_name(phi3, kind);
    }
  }
}

// transformers moves every position to LongRoPE's long factors past the original context;
// pipeprune has the short factors only, so longer tables are a ConfigError saying so.
TEST(Decoder, LongRopeBeyondOriginalContext_ConfigError) {
  const ModelConfig phi3 = variant("phi3_fused_partial_longrope");  // original 128
  EXPECT_NO_THROW(make_rope_tables(phi3, 128, kCpu));
  try {
    make_rope_tables(phi3, 129, kCpu);
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("original_max_position_embeddings (128)"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--seqlen"), std::string::npos) << e.what();
  }
}

TEST(Decoder, Llama3Rope_AllThreeBandsUsed) {
  const ModelConfig config = testing::tiny_config_variants()[3].second;
  ASSERT_EQ(config.rope_scaling.type, RopeScaling::Type::kLlama3);
  ModelConfig plain = config;
  plain.rope_scaling = RopeScaling{};
  const at::Tensor scaled = rope_inverse_frequencies(config), base = rope_inverse_frequencies(plain);
  int kept = 0, divided = 0, smoothed = 0;
  for (int64_t i = 0; i < base.numel(); ++i) {
    const double ratio = base[i].item<double>() / scaled[i].item<double>();
    if (std::abs(ratio - 1.0) < 1e-6) ++kept;
    else if (std::abs(ratio - 8.0) < 1e-5) ++divided;
    else ++smoothed;
  }
  EXPECT_EQ(kept, 1);
  EXPECT_EQ(smoothed, 2);
  EXPECT_EQ(divided, 5);
}

TEST(Decoder, LongSequenceChunkedAttention_MatchesNaive) {
  // 3000 tokens: one KV head's fp32 scores (2 query heads x 3000 x 3000) exceed
  // kAttentionChunkBytes, so attention runs one KV head at a time.
  const ModelConfig config = testing::tiny_config("llama", 32, 4, 2, 8);
  const int64_t tokens = 3000;
  ASSERT_GT(2 * tokens * tokens * 4, kAttentionChunkBytes);
  const TinyModel m = testing::make_tiny_model(config, 21);
  at::Generator gen = at::detail::createCPUGenerator(22);
  const at::Tensor hidden = at::randn({1, tokens, config.hidden_size}, gen, at::TensorOptions().dtype(at::kFloat));
  const RopeTables rope = make_rope_tables(config, tokens, kCpu);
  const at::Tensor out = decoder_layer_forward(m.layers[0], config, rope, hidden);

  const std::vector<int64_t> rows = {0, 1, 1500, tokens - 1};
  const Matrix expected = testing::naive_layer(testing::to_naive(m).layers[0], config,
                                               testing::to_matrix(hidden[0]), 0, nullptr, rows);
  for (int64_t row : rows) {
    const at::Tensor e = at::tensor(expected[row], at::kDouble);
    EXPECT_LT(testing::max_relative_error(out[0][row], e), 1e-4) << "row " << row;
  }
}

TEST(Decoder, RmsNormBf16_NormalizesInFp32ThenCasts) {
  at::Generator gen = at::detail::createCPUGenerator(23);
  const at::Tensor x = (at::randn({3, 64}, gen, at::TensorOptions().dtype(at::kFloat)) * 100).to(at::kBFloat16);
  const at::Tensor w = (at::rand({64}, gen, at::TensorOptions().dtype(at::kFloat)) + 0.5).to(at::kBFloat16);
  const at::Tensor y = rms_norm(x, w, 1e-5);
  ASSERT_EQ(y.scalar_type(), at::kBFloat16);
  const Matrix expected = testing::naive_rms_norm(testing::to_matrix(x), testing::to_vector(w), 1e-5);
  const at::Tensor e = testing::to_tensor({expected})[0];
  // Two bf16 roundings (the normalized x, then the product): within 2^-7 relative.
  EXPECT_LT(((y.to(at::kDouble) - e).abs() / e.abs()).max().item<double>(), 1.0 / 128);
}

TEST(Decoder, PositionsBeyondRopeTables_Error) {
  const TinyModel m = testing::make_tiny_model(testing::tiny_config("llama", 32, 4, 2, 8), 24);
  const RopeTables rope = make_rope_tables(m.config, 4, kCpu);
  const at::Tensor h = at::zeros({1, 3, 32});
  EXPECT_NO_THROW(decoder_layer_forward(m.layers[0], m.config, rope, h, 1));
  EXPECT_THROW(decoder_layer_forward(m.layers[0], m.config, rope, h, 2), Error);
}

TEST(Decoder, CacheLengthNotOffset_Error) {
  const TinyModel m = testing::make_tiny_model(testing::tiny_config("llama", 32, 4, 2, 8), 25);
  const RopeTables rope = make_rope_tables(m.config, 8, kCpu);
  LayerKVCache cache;
  decoder_layer_forward(m.layers[0], m.config, rope, at::zeros({1, 2, 32}), 0, &cache);
  EXPECT_EQ(cache.length, 2);
  EXPECT_THROW(decoder_layer_forward(m.layers[0], m.config, rope, at::zeros({1, 1, 32}), 3, &cache), Error);
}

TEST(Decoder, WrongHiddenSizeOrDtype_Error) {
  const TinyModel m = testing::make_tiny_model(testing::tiny_config("llama", 32, 4, 2, 8), 26);
  const RopeTables rope = make_rope_tables(m.config, 8, kCpu);
  EXPECT_THROW(decoder_layer_forward(m.layers[0], m.config, rope, at::zeros({1, 2, 16})), Error);
  EXPECT_THROW(decoder_layer_forward(m.layers[0], m.config, rope, at::zeros({1, 2, 32}, at::kBFloat16)), Error);
}

TEST(Decoder, TokenOutsideVocabulary_ErrorNamingId) {
  const TinyModel m = testing::make_tiny_model(testing::tiny_config("llama", 32, 4, 2, 8), 27);
  const at::Tensor tokens = at::tensor({3, 40}, at::kLong).view({1, 2});
  try {
    embed_tokens(m.embedding, tokens);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token id 40"), std::string::npos) << e.what();
  }
}

TEST(Decoder, ScratchEstimate_GrowsWithTokensAndCoversScores) {
  const ModelConfig config = testing::tiny_config("llama", 32, 4, 2, 8);
  const int64_t small = decoder_layer_scratch_bytes(config, 1, 16, 16, at::kFloat);
  const int64_t large = decoder_layer_scratch_bytes(config, 1, 256, 256, at::kFloat);
  EXPECT_GT(large, small);
  EXPECT_GE(large, config.n_heads * 256 * 256 * 4);  // one full fp32 score matrix
}


// attend() lets ATen's CPU softmax overwrite the fp32 scores (at::_softmax_out into its input):
// that must give at::softmax's bits, masked (-inf) entries and whole rows of -inf included.
TEST(DecoderAttention, InPlaceCpuSoftmax_SameBitsAsOutOfPlace) {
  c10::InferenceMode guard;
  at::manual_seed(3);
  for (int64_t keys : {1, 7, 64, 300}) {
    at::Tensor scores = at::randn({2, 3, 11, keys}) * 30;
    scores.masked_fill_(at::rand({2, 3, 11, keys}) < 0.3, -std::numeric_limits<double>::infinity());
    scores[0][0][0].fill_(-std::numeric_limits<double>::infinity());
    const at::Tensor expected = at::softmax(scores, -1, at::kFloat);
    at::Tensor in_place = scores.clone();
    at::_softmax_out(in_place, in_place, -1, false);
    const at::Tensor same = expected.view(at::kInt).eq(in_place.view(at::kInt))
                                .logical_or(expected.isnan().logical_and(in_place.isnan()));
    EXPECT_TRUE(same.all().item<bool>()) << keys << " keys";
  }
}
}  // namespace
}  // namespace pipeprune
