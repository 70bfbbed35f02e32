#include "core/merge/lora_adapter.h"

#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <random>

#include <nlohmann/json.hpp>

#include "core/common/error.h"
#include "core/io/safetensors.h"
#include "support/expect_error.h"
#include "unit/io/io_test_util.h"

// Fixture adapters are written here as PEFT saves them; every fold is compared with a dense
// reference computed by plain double loops over the stored values, never through ATen.
namespace pipeprune {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::error_message;

const std::string kQ = "model.layers.0.self_attn.q_proj";  // base [8, 6]
const std::string kV = "model.layers.0.self_attn.v_proj";  // base [4, 6]
const std::string kEmbed = "model.embed_tokens";           // base [10, 6]

// A row-major matrix of the values exactly as stored (already rounded to the stored dtype).
struct Mat {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> v;
  at::ScalarType dtype = at::kFloat;
  float at(int64_t i, int64_t j) const { return v[i * cols + j]; }
};

float stored_value(float x, at::ScalarType dtype) {
  if (dtype == at::kHalf) return static_cast<float>(c10::Half(x));
  if (dtype == at::kBFloat16) return static_cast<float>(c10::BFloat16(x));
  return x;
}

Mat random_mat(int64_t rows, int64_t cols, unsigned seed, at::ScalarType dtype = at::kFloat, float scale = 1.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  Mat m{rows, cols, {}, dtype};
  for (int64_t i = 0; i < rows * cols; ++i) m.v.push_back(stored_value(dist(gen), dtype));
  return m;
}

Mat integer_mat(int64_t rows, int64_t cols, unsigned seed, int limit) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> dist(-limit, limit);
  Mat m{rows, cols, {}, at::kFloat};
  for (int64_t i = 0; i < rows * cols; ++i) m.v.push_back(static_cast<float>(dist(gen)));
  return m;
}

at::Tensor tensor_of(const Mat& m, bool vector = false) {
  std::vector<int64_t> shape = vector ? std::vector<int64_t>{m.rows * m.cols} : std::vector<int64_t>{m.rows, m.cols};
  return at::from_blob(const_cast<float*>(m.v.data()), shape, at::kFloat).clone().to(m.dtype);
}

std::vector<float> values_of(const at::Tensor& t) {
  const at::Tensor f = t.to(at::kFloat).contiguous();
  return std::vector<float>(f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
}

// A minimal safetensors writer of its own (header, then the tensors back to back).
void write_safetensors(const fs::path& path, const std::map<std::string, at::Tensor>& tensors) {
  Json header = Json::object();
  std::string data;
  for (const auto& [name, tensor] : tensors) {
    const at::Tensor t = tensor.contiguous();
    const char* dtype = t.scalar_type() == at::kFloat ? "F32" : t.scalar_type() == at::kHalf ? "F16" : "BF16";
    const size_t begin = data.size();
    data.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
    header[name] = {{"dtype", dtype}, {"shape", t.sizes().vec()}, {"data_offsets", {begin, data.size()}}};
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  testing::write_bytes(path, testing::safetensors_bytes(text, data));
}

std::string lora(const std::string& module, const char* part) { return "base_model.model." + module + part; }

// An adapter as PEFT's save_pretrained writes it; tests edit `config` and `tensors` first.
struct AdapterFixture {
  Json config = {{"alpha_pattern", Json::object()}, {"bias", "none"},     {"fan_in_fan_out", false},
                 {"lora_alpha", 8},                {"modules_to_save", nullptr}, {"peft_type", "LORA"},
                 {"r", 4},                         {"rank_pattern", Json::object()}, {"target_modules", {"q_proj", "v_proj"}},
                 {"use_dora", false},              {"use_rslora", false}};
  std::map<std::string, at::Tensor> tensors;

  void add_linear(const std::string& module, const Mat& a, const Mat& b) {
    tensors[lora(module, ".lora_A.weight")] = tensor_of(a);
    tensors[lora(module, ".lora_B.weight")] = tensor_of(b);
  }
  fs::path write(const std::string& name) const {
    const fs::path dir = testing::fresh_dir("lora_" + name);
    testing::write_bytes(dir / kAdapterConfigFile, config.dump(2));
    write_safetensors(dir / kAdapterSafetensorsFile, tensors);
    return dir;
  }
};

// W + s * (B @ A) (or its transpose), in double; and the error envelope |W| + s * |B||A|.
struct Reference {
  std::vector<double> value;
  std::vector<double> envelope;
};

Reference linear_reference(const Mat& w, const Mat& a, const Mat& b, double s, bool transposed) {
  Reference ref;
  for (int64_t i = 0; i < w.rows; ++i) {
    for (int64_t j = 0; j < w.cols; ++j) {
      // Element (i, j) of W is (i, j) of B @ A, or (j, i) of it when transposed.
      const int64_t out = transposed ? j : i;
      const int64_t in = transposed ? i : j;
      double sum = 0.0;
      double abs_sum = 0.0;
      for (int64_t k = 0; k < a.rows; ++k) {
        sum += static_cast<double>(b.at(out, k)) * a.at(k, in);
        abs_sum += std::fabs(static_cast<double>(b.at(out, k)) * a.at(k, in));
      }
      ref.value.push_back(w.at(i, j) + s * sum);
      ref.envelope.push_back(std::fabs(w.at(i, j)) + s * abs_sum);
    }
  }
  return ref;
}

void expect_close(const at::Tensor& got, const Reference& ref) {
  const std::vector<float> values = values_of(got);
  ASSERT_EQ(values.size(), ref.value.size());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_NEAR(values[i], ref.value[i], 4 * FLT_EPSILON * ref.envelope[i]) << "element " << i;
  }
}

// The standard fixture: q_proj and v_proj adapted at rank 4 (A, B of the given dtype).
struct TwoModules {
  Mat a_q = random_mat(4, 6, 1);
  Mat b_q = random_mat(8, 4, 2);
  Mat a_v = random_mat(4, 6, 3);
  Mat b_v = random_mat(4, 4, 4);
  Mat w_q = random_mat(8, 6, 5);
  Mat w_v = random_mat(4, 6, 6);
  AdapterFixture fixture;
  TwoModules() {
    fixture.add_linear(kQ, a_q, b_q);
    fixture.add_linear(kV, a_v, b_v);
  }
};

TEST(LoraAdapterTest, Fold_PlainScaling_MatchesDenseReference) {
  TwoModules m;
  const LoraAdapter adapter = LoraAdapter::open(m.fixture.write("plain"));
  EXPECT_DOUBLE_EQ(adapter.scaling(kQ), 2.0);  // lora_alpha 8 / r 4
  const at::Tensor w_q = tensor_of(m.w_q);
  const at::Tensor before = w_q.clone();
  const at::Tensor folded = adapter.fold(kQ + ".weight", w_q);
  EXPECT_EQ(folded.scalar_type(), at::kFloat);
  expect_close(folded, linear_reference(m.w_q, m.a_q, m.b_q, 2.0, false));
  expect_close(adapter.fold(kV + ".weight", tensor_of(m.w_v)), linear_reference(m.w_v, m.a_v, m.b_v, 2.0, false));
  EXPECT_TRUE(at::equal(w_q, before)) << "fold must not change its input";
}

TEST(LoraAdapterTest, Fold_UntargetedTensor_ReturnsItUnchanged) {
  TwoModules m;
  const LoraAdapter adapter = LoraAdapter::open(m.fixture.write("untargeted"));
  const at::Tensor norm = at::ones({6});
  EXPECT_FALSE(adapter.changes("model.norm.weight"));
  EXPECT_FALSE(adapter.changes(kQ + ".bias"));
  EXPECT_TRUE(adapter.fold("model.norm.weight", norm).is_same(norm));
}

TEST(LoraAdapterTest, Fold_UseRslora_ScalesByAlphaOverSqrtR) {
  TwoModules m;
  m.fixture.config["use_rslora"] = true;
  const LoraAdapter adapter = LoraAdapter::open(m.fixture.write("rslora"));
  EXPECT_DOUBLE_EQ(adapter.scaling(kQ), 4.0);  // 8 / sqrt(4)
  expect_close(adapter.fold(kQ + ".weight", tensor_of(m.w_q)), linear_reference(m.w_q, m.a_q, m.b_q, 4.0, false));
}

// rank_pattern / alpha_pattern keys in file order, each tried as "(.*\.)?(key)$" over the
// whole module name. The keys are chosen so that sorted order would pick other values.
TEST(LoraAdapterTest, Scaling_RankAndAlphaPattern_FirstMatchingKeyInFileOrderWins) {
  const Mat a_q = random_mat(3, 6, 11), b_q = random_mat(8, 3, 12), w_q = random_mat(8, 6, 13);
  const Mat a_v = random_mat(2, 6, 14), b_v = random_mat(4, 2, 15);
  const Mat a_e = random_mat(2, 10, 16), b_e = random_mat(6, 2, 17);
  AdapterFixture fixture;
  fixture.config["r"] = 2;
  fixture.config["lora_alpha"] = 4;
  // Both keys match q_proj; the first (3) wins, though "q_proj" sorts first.
  fixture.config["rank_pattern"] = Json{{"self_attn\\.(q|k)_proj", 3}, {"q_proj", 5}};
  // "_proj" is no whole dot-separated suffix of any name, so it never matches; v_proj takes
  // "v_proj" (12) before ".*_proj" (1), though ".*_proj" sorts first.
  fixture.config["alpha_pattern"] = Json{{"_proj", 100}, {"v_proj", 12}, {".*_proj", 1}};
  fixture.add_linear(kQ, a_q, b_q);
  fixture.add_linear(kV, a_v, b_v);
  fixture.tensors[lora(kEmbed, ".lora_embedding_A")] = tensor_of(a_e);
  fixture.tensors[lora(kEmbed, ".lora_embedding_B")] = tensor_of(b_e);
  const LoraAdapter adapter = LoraAdapter::open(fixture.write("patterns"));

  EXPECT_DOUBLE_EQ(adapter.scaling(kQ), 1.0 / 3.0);     // r 3, alpha 1 (".*_proj")
  EXPECT_DOUBLE_EQ(adapter.scaling(kV), 6.0);           // r 2, alpha 12
  EXPECT_DOUBLE_EQ(adapter.scaling(kEmbed), 2.0);       // no key matches: 4 / 2
  EXPECT_DOUBLE_EQ(adapter.scaling("q_proj"), 1.0 / 5.0);  // the dot prefix is optional: r 5
  // "q_proj" must start at a dot: "xq_proj" keeps r 2; ".*_proj" still gives alpha 1.
  EXPECT_DOUBLE_EQ(adapter.scaling("model.layers.0.self_attn.xq_proj"), 0.5);
  // Anchored at the end: a name that only contains the key keeps the defaults.
  EXPECT_DOUBLE_EQ(adapter.scaling("model.layers.0.self_attn.q_proj.base_layer"), 2.0);
  expect_close(adapter.fold(kQ + ".weight", tensor_of(w_q)), linear_reference(w_q, a_q, b_q, 1.0 / 3.0, false));
}

TEST(LoraAdapterTest, Fold_FanInFanOut_TransposesTheProduct) {
  TwoModules m;
  m.fixture.config["fan_in_fan_out"] = true;
  const LoraAdapter adapter = LoraAdapter::open(m.fixture.write("fan_in_fan_out"));
  const Mat w_q = random_mat(6, 8, 21);  // [in, out], as GPT-2's Conv1D stores it
  expect_close(adapter.fold(kQ + ".weight", tensor_of(w_q)), linear_reference(w_q, m.a_q, m.b_q, 2.0, true));
  const std::string message =
      error_message<ConfigError>([&] { adapter.fold(kQ + ".weight", tensor_of(m.w_q)); });
  EXPECT_THAT(message, HasSubstr("[8, 6]"));
  EXPECT_THAT(message, HasSubstr("[6, 8]"));
}

TEST(LoraAdapterTest, Fold_Embedding_AddsTransposedProductOfVocabByDim) {
  const Mat a = random_mat(4, 10, 31);  // lora_embedding_A [r, vocab]
  const Mat b = random_mat(6, 4, 32);   // lora_embedding_B [dim, r]
  const Mat e = random_mat(10, 6, 33);
  AdapterFixture fixture;
  fixture.tensors[lora(kEmbed, ".lora_embedding_A")] = tensor_of(a);
  fixture.tensors[lora(kEmbed, ".lora_embedding_B")] = tensor_of(b);
  const LoraAdapter adapter = LoraAdapter::open(fixture.write("embedding"));
  EXPECT_THAT(adapter.targets(), ElementsAre(kEmbed + ".weight"));
  expect_close(adapter.fold(kEmbed + ".weight", tensor_of(e)), linear_reference(e, a, b, 2.0, true));
}

// PEFT saves the embedding layer itself with an adapter that targets it (save_embedding_layers);
// loading the adapter puts that weight in place of the base's, and the fold adds to it.
TEST(LoraAdapterTest, Fold_SavedBaseLayer_ReplacesTheBaseWeightBeforeTheDelta) {
  const Mat a = random_mat(4, 10, 31);
  const Mat b = random_mat(6, 4, 32);
  const Mat saved = random_mat(10, 6, 34);
  const Mat e = random_mat(10, 6, 33);
  AdapterFixture fixture;
  fixture.tensors[lora(kEmbed, ".lora_embedding_A")] = tensor_of(a);
  fixture.tensors[lora(kEmbed, ".lora_embedding_B")] = tensor_of(b);
  fixture.tensors["base_model.model." + kEmbed + ".base_layer.weight"] = tensor_of(saved);
  const LoraAdapter adapter = LoraAdapter::open(fixture.write("base_layer"));
  EXPECT_THAT(adapter.targets(), ElementsAre(kEmbed + ".weight"));
  expect_close(adapter.fold(kEmbed + ".weight", tensor_of(e)), linear_reference(saved, a, b, 2.0, true));
}

TEST(LoraAdapterTest, Open_SavedBaseLayerOfAnUnadaptedModule_ConfigError) {
  TwoModules m;
  m.fixture.tensors["base_model.model." + kEmbed + ".base_layer.weight"] = at::zeros({10, 6});
  const fs::path dir = m.fixture.write("stray_base_layer");
  EXPECT_THAT(error_message<ConfigError>([&] { LoraAdapter::open(dir); }),
              HasSubstr("saved base layer of " + kEmbed + ", which has no LoRA factors"));
}

TEST(LoraAdapterTest, Fold_LoraBBias_AddsScaledBias) {
  TwoModules m;
  const Mat bias = random_mat(1, 8, 41);
  const Mat base_bias = random_mat(1, 8, 42);
  m.fixture.tensors[lora(kQ, ".lora_B.bias")] = tensor_of(bias, true);
  const LoraAdapter adapter = LoraAdapter::open(m.fixture.write("bias"));
  ASSERT_TRUE(adapter.changes(kQ + ".bias"));
  const std::vector<float> got = values_of(adapter.fold(kQ + ".bias", tensor_of(base_bias, true)));
  ASSERT_EQ(got.size(), 8u);
  for (int64_t i = 0; i < 8; ++i) {
    const double want = base_bias.v[i] + 2.0 * bias.v[i];
    EXPECT_NEAR(got[i], want, 4 * FLT_EPSILON * (std::fabs(base_bias.v[i]) + 2.0 * std::fabs(bias.v[i])));
  }
}

// Exact fixture: integer factors and a power-of-two scaling make every delta exact in fp32 with
// up to 13 significant bits, more than bf16 keeps, so rounding the delta first would show.
TEST(LoraAdapterTest, Fold_Bf16Base_RoundsTheFp32SumOnce) {
  const Mat a = integer_mat(2, 6, 51, 60), b = integer_mat(8, 2, 52, 60);
  Mat w = random_mat(8, 6, 53, at::kBFloat16, 2.0f);
  AdapterFixture fixture;
  fixture.config["r"] = 2;
  fixture.config["lora_alpha"] = std::ldexp(1.0, -19);  // scaling 2^-20
  fixture.add_linear(kQ, a, b);
  const LoraAdapter adapter = LoraAdapter::open(fixture.write("bf16"));
  const at::Tensor folded = adapter.fold(kQ + ".weight", tensor_of(w));
  ASSERT_EQ(folded.scalar_type(), at::kBFloat16);
  const std::vector<float> got = values_of(folded);
  int double_rounding_differs = 0;
  for (int64_t i = 0; i < 8; ++i) {
    for (int64_t j = 0; j < 6; ++j) {
      const float delta = static_cast<float>((b.at(i, 0) * a.at(0, j) + b.at(i, 1) * a.at(1, j)) * std::ldexp(1.0, -20));
      const float once = static_cast<float>(c10::BFloat16(w.at(i, j) + delta));
      const float twice = static_cast<float>(c10::BFloat16(w.at(i, j) + static_cast<float>(c10::BFloat16(delta))));
      EXPECT_EQ(got[i * 6 + j], once) << "element " << i << "," << j;
      double_rounding_differs += once != twice;
    }
  }
  EXPECT_GT(double_rounding_differs, 0) << "the fixture cannot tell one rounding from two";
}

// fp16 / bf16 factors are upcast before the product, as PEFT's autocast_adapter_dtype does:
// a product or scale in half precision would miss the reference by far more than fp32 ulps.
TEST(LoraAdapterTest, Fold_HalfPrecisionFactors_UpcastToFp32) {
  for (const at::ScalarType dtype : {at::kHalf, at::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    const Mat a = random_mat(4, 6, 61, dtype), b = random_mat(8, 4, 62, dtype), w = random_mat(8, 6, 63);
    AdapterFixture fixture;
    fixture.config["lora_alpha"] = 5;  // scaling 1.25
    fixture.add_linear(kQ, a, b);
    const LoraAdapter adapter = LoraAdapter::open(fixture.write("half"));
    const at::Tensor folded = adapter.fold(kQ + ".weight", tensor_of(w));
    EXPECT_EQ(folded.scalar_type(), at::kFloat);
    expect_close(folded, linear_reference(w, a, b, 1.25, false));
  }
}

TEST(LoraAdapterTest, Targets_WeightsBiasesAndEmbeddings_Sorted) {
  TwoModules m;
  m.fixture.tensors[lora(kQ, ".lora_B.bias")] = at::zeros({8});
  m.fixture.tensors[lora(kEmbed, ".lora_embedding_A")] = at::zeros({4, 10});
  m.fixture.tensors[lora(kEmbed, ".lora_embedding_B")] = at::zeros({6, 4});
  const LoraAdapter adapter = LoraAdapter::open(m.fixture.write("targets"));
  EXPECT_THAT(adapter.targets(), ElementsAre("model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.bias",
                                             "model.layers.0.self_attn.q_proj.weight",
                                             "model.layers.0.self_attn.v_proj.weight"));
}

TEST(LoraAdapterTest, CheckAgainst_ShapeMismatch_NamesAdapterTensorAndBothShapes) {
  TwoModules m;
  const fs::path adapter_dir = m.fixture.write("check");
  const LoraAdapter adapter = LoraAdapter::open(adapter_dir);
  const fs::path good = testing::fresh_dir("lora_check_base_good");
  write_safetensors(good / "model.safetensors", {{kQ + ".weight", at::zeros({8, 6})},
                                                 {kV + ".weight", at::zeros({4, 6})},
                                                 {"model.norm.weight", at::ones({6})}});
  adapter.check_against(SafetensorsCheckpoint::open(good));

  const fs::path bad = testing::fresh_dir("lora_check_base_bad");
  write_safetensors(bad / "model.safetensors", {{kQ + ".weight", at::zeros({8, 6})}, {kV + ".weight", at::zeros({5, 6})}});
  const std::string message =
      error_message<ConfigError>([&] { adapter.check_against(SafetensorsCheckpoint::open(bad)); });
  EXPECT_THAT(message, HasSubstr("adapter " + adapter_dir.string() + " does not match base " + bad.string()));
  EXPECT_THAT(message, HasSubstr(kV + ".weight"));
  EXPECT_THAT(message, HasSubstr("[5, 6]"));
  EXPECT_THAT(message, HasSubstr("[4, 6]"));

  const fs::path missing = testing::fresh_dir("lora_check_base_missing");
  write_safetensors(missing / "model.safetensors", {{kQ + ".weight", at::zeros({8, 6})}});
  EXPECT_THAT(error_message<ConfigError>([&] { adapter.check_against(SafetensorsCheckpoint::open(missing)); }),
              HasSubstr(kV + ".weight"));
}

// --- Refusals: each a one-line error naming the folder or file. ---

TEST(LoraAdapterTest, Open_MissingConfig_IoError) {
  TwoModules m;
  const fs::path dir = m.fixture.write("no_config");
  fs::remove(dir / kAdapterConfigFile);
  EXPECT_THAT(error_message<IoError>([&] { LoraAdapter::open(dir); }), HasSubstr(dir.string() + ": no adapter_config.json"));
}

TEST(LoraAdapterTest, Open_UnknownPeftType_ConfigError) {
  TwoModules m;
  m.fixture.config["peft_type"] = "IA3";
  const fs::path dir = m.fixture.write("ia3");
  EXPECT_THAT(error_message<ConfigError>([&] { LoraAdapter::open(dir); }), HasSubstr("peft_type is \"IA3\""));
}

TEST(LoraAdapterTest, Open_UseDora_ConfigError) {
  TwoModules m;
  m.fixture.config["use_dora"] = true;
  const fs::path dir = m.fixture.write("dora");
  EXPECT_THAT(error_message<ConfigError>([&] { LoraAdapter::open(dir); }), HasSubstr("use_dora"));
}

TEST(LoraAdapterTest, Open_ModulesToSave_ConfigError) {
  TwoModules m;
  m.fixture.config["modules_to_save"] = Json::array({"lm_head"});
  const fs::path dir = m.fixture.write("modules_to_save");
  EXPECT_THAT(error_message<ConfigError>([&] { LoraAdapter::open(dir); }), HasSubstr("modules_to_save"));
}

TEST(LoraAdapterTest, Open_NonPositiveRank_ConfigError) {
  TwoModules m;
  m.fixture.config["r"] = 0;
  const fs::path dir = m.fixture.write("r0");
  EXPECT_THAT(error_message<ConfigError>([&] { LoraAdapter::open(dir); }), HasSubstr("r is 0"));
}

TEST(LoraAdapterTest, Open_BinOnly_ConfigErrorAsksForSafetensors) {
  TwoModules m;
  const fs::path dir = m.fixture.write("bin");
  fs::rename(dir / kAdapterSafetensorsFile, dir / kAdapterBinFile);
  EXPECT_THAT(error_message<ConfigError>([&] { LoraAdapter::open(dir); }), HasSubstr("safe_serialization=True"));
}

TEST(LoraAdapterTest, Open_RankDiffersBetweenAAndB_FormatError) {
  TwoModules m;
  m.fixture.tensors[lora(kV, ".lora_B.weight")] = at::zeros({4, 3});
  const fs::path dir = m.fixture.write("rank_ab");
  const std::string message = error_message<FormatError>([&] { LoraAdapter::open(dir); });
  EXPECT_THAT(message, HasSubstr(kV));
  EXPECT_THAT(message, HasSubstr("disagree on the rank (4 vs 3)"));
}

TEST(LoraAdapterTest, Open_RankDiffersFromConfig_FormatError) {
  TwoModules m;
  m.fixture.config["r"] = 2;
  const fs::path dir = m.fixture.write("rank_config");
  EXPECT_THAT(error_message<FormatError>([&] { LoraAdapter::open(dir); }), HasSubstr("gives it r = 2"));
}

TEST(LoraAdapterTest, Open_FactorWithoutPartner_FormatError) {
  TwoModules m;
  m.fixture.tensors.erase(lora(kV, ".lora_B.weight"));
  const fs::path dir = m.fixture.write("partner");
  EXPECT_THAT(error_message<FormatError>([&] { LoraAdapter::open(dir); }),
              HasSubstr(kV + " has lora_A.weight but no lora_B.weight"));
}

TEST(LoraAdapterTest, Open_BiasTrainedWithoutLoraBBias_ConfigError) {
  TwoModules m;
  m.fixture.config["bias"] = "lora_only";
  const fs::path dir = m.fixture.write("bias_lora_only");
  EXPECT_THAT(error_message<ConfigError>([&] { LoraAdapter::open(dir); }), HasSubstr("bias is \"lora_only\""));
}

TEST(LoraAdapterTest, Open_TensorThatIsNoLoraFactor_ConfigError) {
  TwoModules m;
  m.fixture.tensors["base_model.model." + kQ + ".bias"] = at::zeros({8});  // a trained base bias
  const fs::path dir = m.fixture.write("foreign");
  EXPECT_THAT(error_message<ConfigError>([&] { LoraAdapter::open(dir); }),
              HasSubstr("base_model.model." + kQ + ".bias is not a LoRA factor"));
}

}  // namespace
}  // namespace pipeprune
