// Reading a checkpoint's tensors: safetensors (one file, or several through
// model.safetensors.index.json), or the zip-format torch.save archives transformers writes with
// save_pretrained(safe_serialization=False) (pytorch_model.bin, or pytorch_model.bin.index.json
// and its shards).
//
// Files are mmap'd read-only; nothing is read until a tensor is asked for, so loading one
// decoder layer touches only that layer's pages. Every safetensors header field is validated
// before use (header length cap, dtype x shape == byte range, offsets inside the data area, no
// overlap, no integer overflow); a violation is a FormatError naming the file and the tensor.
// Unused bytes between tensors are tolerated (the safetensors library rejects them), overlaps
// are not. A .bin archive is listed by torch_archive.h (LibTorch's zip reader and a restricted
// unpickler that never executes anything); its tensors are read from the same mapping, and two
// names on one storage (tied embeddings) are two tensors over the same bytes, as torch.save
// keeps them. Dtypes F32, F16 and BF16 only; any other dtype is a FormatError at open().
// A checkpoint folder holds, in transformers' order of preference, `model.safetensors`,
// `model.safetensors.index.json` and its shards, `pytorch_model.bin`, or
// `pytorch_model.bin.index.json` and its shards; the first present is read.
// Objects are immutable after open(): any thread may read concurrently. A SafetensorsFile
// unmaps its file when the last shared_ptr to it goes away.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/common/dtype.h"

namespace pipeprune {

// The weight files of a checkpoint folder, as transformers names them.
inline constexpr const char* kSafetensorsSingleFile = "model.safetensors";
inline constexpr const char* kSafetensorsIndexFile = "model.safetensors.index.json";
inline constexpr const char* kPytorchBinSingleFile = "pytorch_model.bin";
inline constexpr const char* kPytorchBinIndexFile = "pytorch_model.bin.index.json";

// Largest JSON header accepted (the safetensors library uses the same cap).
constexpr int64_t kMaxSafetensorsHeaderBytes = 100LL * 1024 * 1024;

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  int64_t numel = 0;
  int64_t n_bytes = 0;
  // Byte offset of the tensor data from the start of the file (header included).
  int64_t file_offset = 0;
  // Which file of the checkpoint holds it (index into SafetensorsCheckpoint::files()).
  int file_index = 0;
};

// One mmap'd weight file: a .safetensors file or a zip-format torch.save archive.
class SafetensorsFile {
 public:
  // Maps and validates the file; FormatError/IoError naming `path` on any problem.
  static std::shared_ptr<const SafetensorsFile> open(const std::filesystem::path& path);
  // The same for a torch.save archive (pytorch_model*.bin, PyTorch >= 1.6), torch_archive.h.
  static std::shared_ptr<const SafetensorsFile> open_pytorch_bin(const std::filesystem::path& path);
  ~SafetensorsFile();

  const std::filesystem::path& path() const { return path_; }
  // Tensors in the order of their data offsets.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // Always empty for a .bin file.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const uint8_t* data(const TensorInfo& info) const { return base_ + info.file_offset; }
  // Copies one tensor into a new contiguous CPU tensor of its stored dtype, then tells the
  // kernel the mapped pages are no longer needed, so the mapping does not grow resident memory.
  at::Tensor load(const TensorInfo& info) const;
  int64_t file_size() const { return size_; }
  bool pytorch_bin() const { return pytorch_bin_; }

 private:
  SafetensorsFile() = default;
  // Maps `path` (a regular file of at least `min_size` bytes) with no tensors listed yet.
  static std::shared_ptr<SafetensorsFile> map_file(const std::filesystem::path& path, int64_t min_size);
  std::filesystem::path path_;
  bool pytorch_bin_ = false;
  const uint8_t* base_ = nullptr;
  int64_t size_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint folder: `model.safetensors`, or the shards listed by
// `model.safetensors.index.json`, or the same two for pytorch_model.bin (every shard named in an
// index must exist and hold exactly the tensors the index assigns to it).
class SafetensorsCheckpoint {
 public:
  static SafetensorsCheckpoint open(const std::filesystem::path& model_dir);

  // Lookups by name accept the stored names and their aliases (below); the TensorInfo returned
  // always carries the stored name.
  bool has(const std::string& name) const;
  // FormatError naming the folder when absent.
  const TensorInfo& info(const std::string& name) const;
  std::optional<TensorInfo> find(const std::string& name) const;
  // All stored tensor names, sorted (aliases are not listed).
  std::vector<std::string> names() const;
  // Other names of stored tensors, from the files' __metadata__: safetensors.torch.save_model
  // stores a shared tensor (tied embeddings) once and records the other name as
  // {"model.embed_tokens.weight": "lm_head.weight"}. Alias -> stored name.
  const std::map<std::string, std::string>& aliases() const { return aliases_; }
  // Every __metadata__ entry of the files except "format" (aliases included), for an output
  // that keeps them.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Copies the tensor's bytes into a new contiguous CPU tensor of its stored dtype.
  at::Tensor load(const std::string& name) const;
  // Shard file names in order (e.g. "model-00001-of-00002.safetensors", or
  // "pytorch_model-00001-of-00002.bin"); one entry if unsharded.
  std::vector<std::string> file_names() const;
  const std::vector<std::shared_ptr<const SafetensorsFile>>& files() const { return files_; }
  // Tensor name -> file name, e.g. to plan an output with plan_layout_like().
  std::map<std::string, std::string> weight_map() const;
  bool sharded() const { return sharded_; }
  // True when the tensors come from pytorch_model*.bin files (no safetensors in the folder):
  // an output is then written as safetensors under safetensors names (plan_layout_of).
  bool pytorch_bin() const { return pytorch_bin_; }
  int64_t total_bytes() const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  bool sharded_ = false;
  bool pytorch_bin_ = false;
  using FileOpener = std::shared_ptr<const SafetensorsFile> (*)(const std::filesystem::path&);
  void open_index(const std::filesystem::path& index_path, FileOpener open_file);
  void collect_aliases();
  const std::string& stored_name(const std::string& name) const;

  std::vector<std::shared_ptr<const SafetensorsFile>> files_;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> aliases_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace pipeprune
