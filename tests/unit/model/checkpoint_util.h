// Writing small checkpoints for the model tests: a TinyModel (optionally with one tensor
// replaced or dropped) as config.json + safetensors in a fresh temporary folder.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/common/dtype.h"
#include "core/io/safetensors_writer.h"
#include "tiny_model.h"

namespace pipeprune::testing {

// A folder under the temp dir, removed when the object goes away.
class TempDir {
 public:
  explicit TempDir(const std::string& name)
      : path_(std::filesystem::temp_directory_path() / ("pipeprune_model_" + name + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline std::vector<std::pair<std::string, at::Tensor>> tiny_named_tensors(const TinyModel& m) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  out.emplace_back("model.embed_tokens.weight", m.embedding.embed_tokens);
  for (const DecoderLayerWeights& layer : m.layers) {
    for (auto& named : layer.named_tensors(m.config)) out.push_back(std::move(named));
  }
  out.emplace_back("model.norm.weight", m.head.norm);
  if (!m.config.tie_word_embeddings) out.emplace_back("lm_head.weight", m.head.lm_head);
  return out;
}

// Writes `tensors` (stored as `dtype`) into dir, sharded every max_shard_bytes, plus config.json.
inline void write_checkpoint(const std::filesystem::path& dir, const ModelConfig& config,
                             const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                             DType dtype = DType::kF32, int64_t max_shard_bytes = int64_t(1) << 40) {
  std::vector<TensorSpec> specs;
  for (const auto& [name, tensor] : tensors) specs.push_back({name, dtype, tensor.sizes().vec()});
  ShardWriter writer(dir, plan_layout_by_size(specs, max_shard_bytes));
  writer.create_files();
  for (const auto& [name, tensor] : tensors) writer.write(name, tensor.to(to_scalar_type(dtype)));
  writer.finish();
  std::ofstream(dir / "config.json") << config.to_json().dump(2);
}

// The model's tensors with `name` replaced by `replacement` (or removed when undefined).
inline std::vector<std::pair<std::string, at::Tensor>> with_tensor(
    std::vector<std::pair<std::string, at::Tensor>> tensors, const std::string& name, const at::Tensor& replacement) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (auto& [n, t] : tensors) {
    if (n != name) out.emplace_back(n, t);
    else if (replacement.defined()) out.emplace_back(n, replacement);
  }
  return out;
}

}  // namespace pipeprune::testing
