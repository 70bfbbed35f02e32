// Writing a Hugging Face checkpoint folder: the one writer behind every output (a pruned model,
// a synthetic model).
//
// Planned before any data from the full tensor list (names, dtypes, shapes): which shard each
// tensor goes to, at which offset, the headers and the index (ShardLayout, safetensors_writer.h).
// Data goes into a staged folder (".NAME.partial" beside the target, StagedDirectory) that only
// commit() renames into place, and commit() first checks completeness: every planned tensor has
// been written, by this writer or by the other writers of the same plan, else a FormatError
// names the first missing tensor, so no tensor can be left zero-filled.
//
// Roles: one writer create()s the folder and its files at full size; other writers of the same
// plan (other ranks of a job) join() it after that and write their own tensors, then sync().
// The creating writer adds the side files (config.json, tokenizer files) and commits, given the
// names the others wrote. Sequencing the roles across ranks (barriers) is the caller's job
// (dist/model_writer.h). A writer is used by one thread at a time. Destroying a creating writer
// that has not committed removes the staged folder.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/common/files.h"
#include "core/io/safetensors.h"
#include "core/io/safetensors_writer.h"

namespace pipeprune {

// The layout of an output holding every tensor of `input` with the same names, dtypes, shapes
// and __metadata__ entries (aliases): in the input's files (same names, same members), or
// re-sharded by size. A pytorch_model*.bin input (input.pytorch_bin()) keeps its grouping of
// tensors into files, but as safetensors: "model.safetensors" for one .bin file, else
// "model-0000N-of-0000M.safetensors" and an index; every stored name is written, so two names
// tied to one storage become two tensors with the same bytes, as for a safetensors input that
// holds both. Logs (INFO) that the output format differs from the input's.
ShardLayout plan_layout_of(const SafetensorsCheckpoint& input, std::optional<int64_t> max_shard_bytes);

// Whether a file of a checkpoint folder holds weights (safetensors, PyTorch, TensorFlow, Flax,
// GGUF files and their indexes): side files are everything else.
bool is_weight_file(const std::string& file_name);

class CheckpointWriter {
 public:
  // Creates the staged folder for `target` and every planned file (headers written, space
  // reserved). IoError when the target exists and `overwrite` is false, or on a full disk.
  static CheckpointWriter create(std::filesystem::path target, bool overwrite, ShardLayout layout);
  // A writer into the staged folder another writer of the same layout has created.
  static CheckpointWriter join(const std::filesystem::path& target, ShardLayout layout);
  // The creating writer of the staged folder an earlier, unfinished run of the same layout left
  // (prune --resume): its files are checked against the layout (FormatError naming the first
  // file whose size or header differs) and kept; what they hold stays.
  static CheckpointWriter resume(std::filesystem::path target, bool overwrite, ShardLayout layout);

  CheckpointWriter(CheckpointWriter&&) noexcept;
  CheckpointWriter& operator=(CheckpointWriter&&) noexcept;
  ~CheckpointWriter();

  // One whole tensor (any device, any memory layout), matching the plan's dtype and shape.
  void write(const std::string& name, const at::Tensor& tensor);
  // A tensor produced piece by piece, front to back (ShardWriter::write_bytes).
  void write_bytes(const std::string& name, int64_t offset, const void* data, int64_t n_bytes);
  // Copies a tensor of `input` through unchanged (same name, same bytes).
  void copy_tensor(const SafetensorsCheckpoint& input, const std::string& name);
  // Flushes what this writer wrote (a joined writer, before the creator commits).
  void sync();
  // Names this writer has written completely (sorted).
  std::vector<std::string> written() const;
  const ShardLayout& layout() const;
  // The staged folder (the same path for every writer of a target).
  const std::filesystem::path& staging_path() const { return staging_path_; }

  // Creating writer only. A side file written into the folder (e.g. config.json).
  void add_file(const std::string& name, const std::string& bytes);
  // Copies the files `names` of folder `from` that exist there (all non-weight files when
  // `names` is empty), skipping any already added.
  void copy_side_files(const std::filesystem::path& from, const std::vector<std::string>& names = {});
  // Creating writer only: the staged folder stays if this writer is destroyed uncommitted (it
  // holds finished layers a later run can resume).
  void keep_staged();
  // Checks that every planned tensor was written (here or in `written_elsewhere`), flushes,
  // writes the index when the layout has one, and renames the folder into place.
  void commit(const std::vector<std::string>& written_elsewhere = {});

 private:
  CheckpointWriter(std::unique_ptr<StagedDirectory> staged, std::filesystem::path staging_path, ShardLayout layout);
  void require_creator(const char* call) const;

  std::unique_ptr<StagedDirectory> staged_;  // the creating writer only
  std::filesystem::path staging_path_;
  std::unique_ptr<ShardWriter> shards_;
  std::vector<std::string> added_files_;
};

}  // namespace pipeprune
