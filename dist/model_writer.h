// Writing the pruned model as a Hugging Face checkpoint folder, from every rank at once.
//
// The output keeps the input's tensors (names, dtypes, shapes) and its sharding (the same file
// names holding the same tensors), or re-shards by --max-shard-size. The folder is built under
// a temporary name next to the target (StagedDirectory) and renamed into place by the first
// rank only after every rank has written its tensors, so a failure on any rank never leaves a
// half-written model at the target path.
//
// Which rank writes what: each rank its own decoder layers; the first rank every tensor that is
// not part of a decoder layer (embedding, final norm, lm_head, anything else), copied from the
// input unchanged, plus the index, config.json, generation_config.json and tokenizer files.
// All ranks must call begin(), finish() in the same order (they contain barriers).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>

#include "core/common/files.h"
#include "core/io/safetensors.h"
#include "core/io/safetensors_writer.h"
#include "core/model/layer_weights.h"
#include "dist/transport/transport.h"

namespace pipeprune {

struct ModelWriterOptions {
  std::filesystem::path output;
  bool overwrite = false;
  std::optional<int64_t> max_shard_bytes;  // unset: keep the input's sharding
};

class ModelWriter {
 public:
  ModelWriter(const SafetensorsCheckpoint& input, ModelWriterOptions options, Transport& transport);
  ~ModelWriter();

  // Creates the temporary folder and the planned files (first rank), then a barrier.
  void begin();
  void write_layer(const DecoderLayerWeights& layer);
  // Barrier; then the first rank copies the non-layer tensors and side files, writes the
  // index and renames the folder into place; a final barrier.
  void finish();
  const std::filesystem::path& staging_path() const { return staging_path_; }

 private:
  void copy_non_layer_tensors();
  void copy_side_files();

  const SafetensorsCheckpoint& input_;
  ModelWriterOptions options_;
  Transport& transport_;
  std::unique_ptr<StagedDirectory> staged_;  // first rank only
  std::filesystem::path staging_path_;
  std::unique_ptr<ShardWriter> writer_;
};

// Whether a tensor name belongs to a decoder layer ("model.layers.N.") and which.
std::optional<int64_t> decoder_layer_of(const std::string& tensor_name);

}  // namespace pipeprune
