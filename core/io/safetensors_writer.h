// Writing safetensors checkpoints, streamed tensor by tensor.
//
// The layout (which tensor goes in which file, at which offset) is planned up front from the
// names, dtypes and shapes alone, so each tensor can be written the moment it is ready and
// different ranks can write the tensors they own into the same planned files. A layout depends
// only on the tensor list and the sharding rule, never on world size, so outputs are
// byte-identical at every world size.
//
// File format, byte for byte what the Hugging Face safetensors library writes for the same
// tensors: 8-byte little-endian header length; a compact JSON header with `__metadata__`
// {"format":"pt"} first, then one {"dtype","shape","data_offsets"} entry per tensor in data
// order, padded with spaces to a multiple of 8; then the data with no gaps. Within a file the
// data is ordered by dtype (F32, then BF16, then F16, the library's order: 4-byte elements
// first keeps every tensor aligned) and then by name; which file a tensor goes to follows the
// planner, never the order in which tensors are written.
// The index is {"metadata":{"total_size":N},"weight_map":{...}} with sorted keys, 2-space
// indent and a final newline, as transformers writes it; total_size is the sum of tensor bytes.
//
// Threads and ranks: planning is pure. One ShardWriter may be shared by threads writing
// different tensors. Ranks each build a writer from the same layout; one calls create_files()
// before any write() and finish() after every rank's writes and sync() (barriers are the
// caller's). Every error is one line naming the file and tensor.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
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

// __metadata__ entries written into every file after {"format": "pt"} (an input's aliases,
// safetensors.h), in key order.
using FileMetadata = std::map<std::string, std::string>;

// "model-00002-of-00005.safetensors" for index 1 of 5: Hugging Face's name of a shard.
std::string shard_name(size_t index, size_t count);

// Both planners throw FormatError on duplicate names, negative dims or byte counts that
// overflow, and ConfigError on a non-positive max_shard_bytes.
//
// Plans files so that each holds at most `max_shard_bytes` of tensor data (a single tensor
// larger than that gets a file of its own), in the given tensor order, named as Hugging Face
// names them. One file is named "model.safetensors" and no index is written.
ShardLayout plan_layout_by_size(const std::vector<TensorSpec>& tensors, int64_t max_shard_bytes,
                                const FileMetadata& metadata = {});
// Plans the same assignment of tensors to files as an existing checkpoint (file names kept).
// `file_of` maps tensor name -> file name; `file_order` lists the file names in order.
ShardLayout plan_layout_like(const std::vector<TensorSpec>& tensors,
                             const std::map<std::string, std::string>& file_of,
                             const std::vector<std::string>& file_order, const FileMetadata& metadata = {});

// Writes tensors into the planned files inside `dir`.
// create_files() makes every file at full size with its header (one rank does this);
// write() stores one tensor's bytes at its planned offset (any rank, any order, each tensor
// once; the tensor must match the planned dtype and shape exactly: FormatError otherwise);
// finish() flushes and writes the index when there is one (the creating rank, after all writes).
// Files are created at full size up front (space reserved with fallocate where the file system
// allows), so a full disk fails at create_files() rather than hours later.
class ShardWriter {
 public:
  ShardWriter(std::filesystem::path dir, ShardLayout layout);
  ~ShardWriter();
  ShardWriter(ShardWriter&&) noexcept;
  ShardWriter& operator=(ShardWriter&&) noexcept;

  void create_files();
  // Accepts a tensor on any device and in any memory layout; copies to contiguous CPU bytes.
  void write(const std::string& name, const at::Tensor& tensor);
  // Stores n_bytes of a tensor's raw bytes at `offset` within it, for tensors produced piece
  // by piece (synthetic weights): pieces come front to back, the first at offset 0.
  void write_bytes(const std::string& name, int64_t offset, const void* data, int64_t n_bytes);
  // fsyncs the files this writer wrote into (a rank that is not the finishing one).
  void sync();
  // fsyncs every planned file, then writes the index when the layout has one.
  void finish();
  // Planned tensors this writer has written completely, and those it has not (sorted).
  std::vector<std::string> written() const;
  std::vector<std::string> missing() const;
  const ShardLayout& layout() const { return layout_; }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  const PlannedTensor& planned(const std::string& name) const;
  std::string file_of(const PlannedTensor& plan) const;

  struct State;
  std::filesystem::path dir_;
  ShardLayout layout_;
  std::unique_ptr<State> state_;
};

}  // namespace pipeprune
