// Writing safetensors checkpoints, streamed tensor by tensor.
//
// The layout (which tensor goes in which file, at which offset) is planned up front from the
// names, dtypes and shapes alone, so each tensor can be written the moment it is ready and
// different ranks can write the tensors they own into the same planned files. A layout depends
// only on the tensor list and the sharding rule, never on world size, so outputs are
// byte-identical at every world size.
//
// File format: 8-byte little-endian header length, JSON header (keys sorted, `__metadata__`
// {"format":"pt"}) padded with spaces to a multiple of 8, then tensor data in the planned order.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/common/dtype.h"

namespace pipeprune {

struct TensorSpec {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
};

struct PlannedTensor {
  TensorSpec spec;
  int file_index = 0;
  int64_t file_offset = 0;  // from the start of the file, header included
  int64_t n_bytes = 0;
};

struct PlannedFile {
  std::string name;        // e.g. "model-00001-of-00002.safetensors"
  std::string header;      // 8-byte length + padded JSON, written first
  int64_t total_size = 0;  // header + data
};

struct ShardLayout {
  std::vector<PlannedFile> files;
  std::map<std::string, PlannedTensor> tensors;
  bool write_index = false;  // true when more than one file
  // Contents of model.safetensors.index.json ({"metadata":{"total_size":N},"weight_map":{...}}).
  std::string index_json() const;
};

// Plans files so that each holds at most `max_shard_bytes` of tensor data (a single tensor
// larger than that gets a file of its own), in the given tensor order, named as Hugging Face
// names them. One file is named "model.safetensors" and no index is written.
ShardLayout plan_layout_by_size(const std::vector<TensorSpec>& tensors, int64_t max_shard_bytes);
// Plans the same assignment of tensors to files as an existing checkpoint (file names kept).
// `file_of` maps tensor name -> file name; `file_order` lists the file names in order.
ShardLayout plan_layout_like(const std::vector<TensorSpec>& tensors,
                             const std::map<std::string, std::string>& file_of,
                             const std::vector<std::string>& file_order);

// Writes tensors into the planned files inside `dir`.
// create_files() makes every file at full size with its header (one rank does this);
// write() stores one tensor's bytes at its planned offset (any rank, any order, each tensor
// once; the tensor must match the planned dtype and shape exactly: FormatError otherwise);
// finish() flushes and writes the index when there is one (the creating rank, after all writes).
class ShardWriter {
 public:
  ShardWriter(std::filesystem::path dir, ShardLayout layout);
  void create_files();
  void write(const std::string& name, const at::Tensor& tensor);
  void finish();
  const ShardLayout& layout() const { return layout_; }

 private:
  std::filesystem::path dir_;
  ShardLayout layout_;
};

}  // namespace pipeprune
