// Synthetic checkpoints: random weights in the exact shapes of published models, for benchmarks
// and tests that must not download anything (`pipeprune synth`).
//
// Named shapes carry the values of the published config.json (see synthetic_shape_source()).
// Weights: every linear and embedding ~ N(0, 0.02^2), RMSNorm weights 1, biases 0. Each value
// is a pure function of (seed, tensor name, element index) (a counter-based hash turned into a
// normal by Box-Muller), so the output is byte-identical for the same seed at any thread count
// or chunk size, and a model trimmed with `--layers` holds exactly the first layers of the full one.
//
// Streaming: the layout is planned from the shapes alone (HF-style shards of at most
// max_shard_bytes, an index when there is more than one), files are created at full size, and
// each tensor is generated and written in chunks of rows, so memory stays at a few chunks
// (tens of MB) whatever the model size; a 70B shape needs only disk. The folder is built under
// a temporary name (StagedDirectory) and renamed into place at the end.
//
// No tokenizer is written unless tokenizer_from names a folder to copy the tokenizer files
// from. Free functions; write_synthetic_model() uses the ATen intra-op threads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/common/dtype.h"
#include "core/model/model_config.h"

namespace pipeprune {

// The named shapes, in a fixed order: llama-1b, llama-3b, llama-7b, llama-13b, llama-30b, llama-70b,
// llama3-8b, llama3-70b, mistral-7b, qwen2-7b.
const std::vector<std::string>& synthetic_shape_names();
// The published config of a named shape (all layers, torch_dtype bfloat16). ConfigError
// naming --shape and listing the names when unknown.
ModelConfig synthetic_shape_config(const std::string& name);
// Which published checkpoint the shape copies, e.g. "meta-llama/Llama-2-7b-hf".
std::string synthetic_shape_source(const std::string& name);

// Parameters of the model a config describes: every distinct tensor once (a tied lm_head is
// not counted twice), as transformers' num_parameters() reports them.
int64_t count_parameters(const ModelConfig& config);

struct SynthOptions {
  ModelConfig config;                     // n_layers already trimmed; torch_dtype is overwritten
  DType dtype = DType::kBF16;             // storage dtype of every tensor
  uint64_t seed = 0;
  std::filesystem::path output;
  bool overwrite = false;
  int64_t max_shard_bytes = 5'000'000'000;  // transformers' default "5GB"
  std::filesystem::path tokenizer_from;     // empty: write no tokenizer
  int64_t chunk_elements = 1 << 24;         // elements generated per chunk (64 MiB of fp32)
  bool progress = true;                     // progress lines through the logger
};

struct SynthResult {
  int64_t n_parameters = 0;
  int64_t n_bytes = 0;  // tensor data written
  int n_files = 0;      // safetensors files
  double seconds = 0;
};

// Writes config.json, the safetensors shards (and index) and the copied tokenizer files into
// options.output. ConfigError for a bad option (a non-positive chunk, a tokenizer folder without
// tokenizer.json or tokenizer.model), IoError when the output exists (without overwrite) or
// cannot be written.
SynthResult write_synthetic_model(const SynthOptions& options);

// Value generation, exposed for tests and benchmarks.
// std of the random tensors.
constexpr float kSynthInitStd = 0.02f;
// The per-tensor key: a mix of the seed and the tensor name.
uint64_t synthetic_tensor_key(uint64_t seed, const std::string& name);
// out[i] = std * z(key, first + i) for i in [0, count): z is a standard normal that depends
// only on key and the element index. Parallel over ATen's intra-op threads.
void fill_synthetic_normal(float* out, int64_t count, uint64_t key, int64_t first, float std);
// What a tensor of this name holds: 1 for RMSNorm weights ("...norm.weight"), 0 for biases
// (".bias"), normal otherwise.
enum class SynthFill { kNormal, kOnes, kZeros };
SynthFill synthetic_fill_of(const std::string& name);

}  // namespace pipeprune
