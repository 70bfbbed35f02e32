#include "core/model/synthetic_model.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/accumulate.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <sstream>

#include "core/common/error.h"
#include "core/common/files.h"
#include "core/common/log.h"
#include "core/common/progress.h"
#include "core/io/checkpoint_writer.h"
#include "core/model/model_spec.h"

namespace pipeprune {
namespace {

struct NamedShape {
  const char* name;
  const char* source;
  ModelConfig config;
};

ModelConfig base_config(const char* model_type, int64_t hidden, int64_t intermediate, int64_t layers,
                        int64_t heads, int64_t kv_heads, int64_t vocab, int64_t max_positions, double eps,
                        double rope_theta) {
  ModelConfig c;
  c.model_type = model_type;
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.head_dim = hidden / heads;
  c.vocab_size = vocab;
  c.max_position_embeddings = max_positions;
  c.rms_norm_eps = eps;
  c.rope_theta = rope_theta;
  c.torch_dtype = DType::kBF16;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

// Llama 3.1's published rope_scaling (the same for 8B and 70B).
ModelConfig llama31(int64_t hidden, int64_t intermediate, int64_t layers, int64_t heads) {
  ModelConfig c = base_config("llama", hidden, intermediate, layers, heads, 8, 128256, 131072, 1e-5, 500000.0);
  c.rope_scaling.type = RopeScaling::Type::kLlama3;
  c.rope_scaling.factor = 8.0;
  c.rope_scaling.low_freq_factor = 1.0;
  c.rope_scaling.high_freq_factor = 4.0;
  c.rope_scaling.original_max_position_embeddings = 8192;
  c.bos_token_id = 128000;
  c.eos_token_ids = {128001};
  return c;
}

ModelConfig published(const char* config_json) {
  ModelConfig c = ModelConfig::from_json(nlohmann::json::parse(config_json), "built-in shape");
  c.torch_dtype = DType::kBF16;
  return c;
}

std::vector<NamedShape> make_shapes() {
  std::vector<NamedShape> shapes;
  shapes.push_back({"llama-1b", "TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T",
                    base_config("llama", 2048, 5632, 22, 32, 4, 32000, 2048, 1e-5, 10000.0)});
  shapes.push_back({"llama-3b", "openlm-research/open_llama_3b_v2",
                    base_config("llama", 3200, 8640, 26, 32, 32, 32000, 2048, 1e-6, 10000.0)});
  shapes.push_back({"llama-7b", "meta-llama/Llama-2-7b-hf",
                    base_config("llama", 4096, 11008, 32, 32, 32, 32000, 4096, 1e-5, 10000.0)});
  shapes.push_back({"llama-13b", "meta-llama/Llama-2-13b-hf",
                    base_config("llama", 5120, 13824, 40, 40, 40, 32000, 4096, 1e-5, 10000.0)});
  // No Llama 2 of this size was released; LLaMA 1's 30B (the "33B") fills the gap users plan for.
  shapes.push_back({"llama-30b", "huggyllama/llama-30b",
                    base_config("llama", 6656, 17920, 60, 52, 52, 32000, 2048, 1e-6, 10000.0)});
  shapes.push_back({"llama-70b", "meta-llama/Llama-2-70b-hf",
                    base_config("llama", 8192, 28672, 80, 64, 8, 32000, 4096, 1e-5, 10000.0)});
  shapes.push_back({"llama3-8b", "meta-llama/Llama-3.1-8B", llama31(4096, 14336, 32, 32)});
  shapes.push_back({"llama3-70b", "meta-llama/Llama-3.1-70B", llama31(8192, 28672, 80, 64)});
  ModelConfig mistral = base_config("mistral", 4096, 14336, 32, 32, 8, 32000, 32768, 1e-5, 10000.0);
  mistral.sliding_window = 4096;
  shapes.push_back({"mistral-7b", "mistralai/Mistral-7B-v0.1", mistral});
  ModelConfig qwen2 = base_config("qwen2", 3584, 18944, 28, 28, 4, 152064, 131072, 1e-6, 1000000.0);
  qwen2.qkv_bias = true;
  qwen2.bos_token_id = 151643;
  qwen2.eos_token_ids = {151643};
  shapes.push_back({"qwen2-7b", "Qwen/Qwen2-7B", qwen2});
  // The families with their own structure are read from their published config.json fields, so
  // that the family defaults come from one place (ModelConfig::from_json).
  shapes.push_back({"qwen3-8b", "Qwen/Qwen3-8B", published(R"({
      "model_type": "qwen3", "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36,
      "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
      "max_position_embeddings": 40960, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
      "tie_word_embeddings": false, "bos_token_id": 151643, "eos_token_id": 151645})")});
  shapes.push_back({"phi-3-mini", "microsoft/Phi-3-mini-4k-instruct", published(R"({
      "model_type": "phi3", "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32,
      "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32064,
      "max_position_embeddings": 4096, "original_max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
      "rope_theta": 10000.0, "rope_scaling": null, "sliding_window": 2047, "tie_word_embeddings": false,
      "bos_token_id": 1, "eos_token_id": 32000, "pad_token_id": 32000})")});
  shapes.push_back({"gemma-2-9b", "google/gemma-2-9b", published(R"({
      "model_type": "gemma2", "hidden_size": 3584, "intermediate_size": 14336, "num_hidden_layers": 42,
      "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 256, "vocab_size": 256000,
      "max_position_embeddings": 8192, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
      "query_pre_attn_scalar": 256, "sliding_window": 4096, "attn_logit_softcapping": 50.0,
      "final_logit_softcapping": 30.0, "bos_token_id": 2, "eos_token_id": 1})")});
  shapes.push_back({"gemma-3-12b", "google/gemma-3-12b-pt (text model)", published(R"({
      "model_type": "gemma3_text", "hidden_size": 3840, "intermediate_size": 15360, "num_hidden_layers": 48,
      "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 256, "vocab_size": 262208,
      "max_position_embeddings": 131072, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
      "rope_scaling": {"rope_type": "linear", "factor": 8.0}, "rope_local_base_freq": 10000.0,
      "query_pre_attn_scalar": 256, "sliding_window": 1024, "sliding_window_pattern": 6,
      "bos_token_id": 2, "eos_token_id": 1})")});
  return shapes;
}

const std::vector<NamedShape>& shapes() {
  static const std::vector<NamedShape> table = make_shapes();
  return table;
}

const NamedShape& find_shape(const std::string& name) {
  for (const NamedShape& shape : shapes()) {
    if (name == shape.name) return shape;
  }
  std::ostringstream names;
  for (const std::string& n : synthetic_shape_names()) names << (names.tellp() > 0 ? ", " : "") << n;
  PIPEPRUNE_FAIL(ConfigError, "--shape: unknown shape '" << name << "'; use one of " << names.str()
                                                         << " or --config config.json");
}

// splitmix64's output function: a bijective mix with good avalanche.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;

// Two independent standard normals for pair `pair` of the stream `key` (Box-Muller on two
// 24-bit uniforms: exact in float, u1 in (0, 1] so the log is finite).
inline void normal_pair(uint64_t key, int64_t pair, float* z0, float* z1) {
  const uint64_t r = mix64(key + static_cast<uint64_t>(pair + 1) * kGolden);
  const float u1 = static_cast<float>((r >> 40) + 1) * 0x1p-24f;
  const float u2 = static_cast<float>((r >> 16) & 0xFFFFFFu) * 0x1p-24f;
  const float radius = std::sqrt(-2.0f * std::log(u1));
  const float angle = 6.2831853071795864769f * u2;
  *z0 = radius * std::cos(angle);
  *z1 = radius * std::sin(angle);
}

// Generates one tensor chunk by chunk and writes each chunk at its planned place.
void write_tensor(CheckpointWriter& writer, const PlannedTensor& plan, const SynthOptions& options,
                  at::Tensor& buffer, Progress& progress, int64_t& written) {
  const std::string& name = plan.spec.name;
  const SynthFill fill = synthetic_fill_of(name);
  const uint64_t key = synthetic_tensor_key(options.seed, name);
  const int64_t numel = c10::multiply_integers(plan.spec.shape);
  const int64_t element = element_size(plan.spec.dtype);
  const c10::ScalarType dtype = to_scalar_type(plan.spec.dtype);
  if (numel == 0) writer.write_bytes(name, 0, nullptr, 0);
  for (int64_t first = 0; first < numel; first += options.chunk_elements) {
    const int64_t count = std::min(options.chunk_elements, numel - first);
    at::Tensor chunk = buffer.narrow(0, 0, count);
    if (fill == SynthFill::kNormal) {
      fill_synthetic_normal(chunk.data_ptr<float>(), count, key, first, kSynthInitStd);
    } else {
      chunk.fill_(fill == SynthFill::kOnes ? 1.0 : 0.0);
    }
    const at::Tensor stored = dtype == at::kFloat ? chunk : chunk.to(dtype);
    writer.write_bytes(name, first * element, stored.data_ptr(), count * element);
    const int64_t before = written >> 20;
    written += count * element;
    // Only when a whole MiB has passed: the many tiny tensors at the end would repeat the last line.
    if (options.progress && (written >> 20) != before) progress.update(written >> 20, name);
  }
}

// Names of the tokenizer files transformers reads from a model folder.
const std::vector<std::string> kTokenizerFiles = {"tokenizer.json", "tokenizer.model", "tokenizer_config.json",
                                                  "special_tokens_map.json", "added_tokens.json", "vocab.json",
                                                  "merges.txt"};

void check_tokenizer_folder(const fs::path& from) {
  PIPEPRUNE_CHECK(fs::exists(from / "tokenizer.json") || fs::exists(from / "tokenizer.model"), ConfigError,
                  "--tokenizer-from " << from.string()
                                      << ": no tokenizer.json or tokenizer.model there; name a model folder that has one");
}

// Every planned tensor, grouped by file and in data order, so each file is written front to back.
std::vector<const PlannedTensor*> write_order(const ShardLayout& layout) {
  std::vector<const PlannedTensor*> order;
  for (const auto& entry : layout.tensors) order.push_back(&entry.second);
  std::sort(order.begin(), order.end(), [](const PlannedTensor* a, const PlannedTensor* b) {
    return a->file_index != b->file_index ? a->file_index < b->file_index : a->file_offset < b->file_offset;
  });
  return order;
}

void write_shards(CheckpointWriter& writer, const SynthOptions& options, int64_t total_bytes) {
  at::Tensor buffer = at::empty({std::max<int64_t>(1, options.chunk_elements)}, at::kFloat);
  Progress progress("synth MiB", std::max<int64_t>(1, total_bytes >> 20), 5.0);
  int64_t written = 0;
  for (const PlannedTensor* plan : write_order(writer.layout())) {
    write_tensor(writer, *plan, options, buffer, progress, written);
  }
}

}  // namespace

const std::vector<std::string>& synthetic_shape_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const NamedShape& shape : shapes()) out.emplace_back(shape.name);
    return out;
  }();
  return names;
}

ModelConfig synthetic_shape_config(const std::string& name) { return find_shape(name).config; }

std::string synthetic_shape_source(const std::string& name) { return find_shape(name).source; }

int64_t count_parameters(const ModelConfig& config) {
  int64_t total = 0;
  for (const TensorSpec& t : ModelSpec::from_config(config, DType::kF32).tensor_specs()) total += c10::multiply_integers(t.shape);
  return total;
}

uint64_t synthetic_tensor_key(uint64_t seed, const std::string& name) {
  uint64_t hash = 0xCBF29CE484222325ULL;  // FNV-1a over the name
  for (const unsigned char c : name) hash = (hash ^ c) * 0x100000001B3ULL;
  return mix64(mix64(seed) ^ hash);
}

void fill_synthetic_normal(float* out, int64_t count, uint64_t key, int64_t first, float std) {
  if (count <= 0) return;
  // Element e is half `e % 2` of pair e / 2; pairs are independent, so threads split them freely.
  const int64_t first_pair = first / 2;
  const int64_t end_pair = (first + count + 1) / 2;
  at::parallel_for(first_pair, end_pair, 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      float z[2];
      normal_pair(key, p, &z[0], &z[1]);
      for (int h = 0; h < 2; ++h) {
        const int64_t e = 2 * p + h;
        if (e >= first && e < first + count) out[e - first] = std * z[h];
      }
    }
  });
}

SynthFill synthetic_fill_of(const std::string& name) {
  auto ends_with = [&](const std::string& suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with("norm.weight")) return SynthFill::kOnes;
  if (ends_with(".bias")) return SynthFill::kZeros;
  return SynthFill::kNormal;
}

SynthResult write_synthetic_model(const SynthOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  PIPEPRUNE_CHECK(options.chunk_elements > 0, ConfigError,
                  "synthetic model: chunk_elements must be positive (got " << options.chunk_elements << ")");
  if (!options.tokenizer_from.empty()) check_tokenizer_folder(options.tokenizer_from);
  ModelConfig config = options.config;
  config.torch_dtype = options.dtype;
  // Round trip through config.json first: whatever cannot be expressed fails before any byte is written.
  const nlohmann::json config_json = config.to_json();
  ModelConfig::from_json(config_json, (options.output / "config.json").string());
  const std::vector<TensorSpec> specs = ModelSpec::from_config(config, options.dtype).tensor_specs();
  const ShardLayout layout = plan_layout_by_size(specs, options.max_shard_bytes);

  SynthResult result;
  for (const TensorSpec& t : specs) {
    result.n_parameters += c10::multiply_integers(t.shape);
    result.n_bytes += c10::multiply_integers(t.shape) * element_size(t.dtype);
  }
  result.n_files = static_cast<int>(layout.files.size());
  if (options.progress) {
    log::info("synth: {:.3f}B parameters ({} layers, {}), {} file(s) in {}", result.n_parameters * 1e-9, config.n_layers,
              safetensors_name(options.dtype), result.n_files, options.output.string());
  }

  CheckpointWriter writer = CheckpointWriter::create(options.output, options.overwrite, layout);
  write_shards(writer, options, result.n_bytes);
  writer.add_file("config.json", config_json.dump(2) + "\n");
  if (!options.tokenizer_from.empty()) writer.copy_side_files(options.tokenizer_from, kTokenizerFiles);
  writer.commit();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace pipeprune
