#include "core/io/safetensors.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>
#include <sstream>

#include "core/common/error.h"
#include "core/common/files.h"
#include "core/common/shape_text.h"
#include "core/io/torch_archive.h"

namespace pipeprune {
namespace {

using nlohmann::json;

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

// A JSON integer in [0, INT64_MAX], or nullopt (float, string, negative, too large).
std::optional<int64_t> non_negative_int(const json& value) {
  if (value.is_number_unsigned()) {
    const uint64_t v = value.get<uint64_t>();
    if (v > static_cast<uint64_t>(kInt64Max)) return std::nullopt;
    return static_cast<int64_t>(v);
  }
  if (value.is_number_integer()) {
    const int64_t v = value.get<int64_t>();
    if (v < 0) return std::nullopt;
    return v;
  }
  return std::nullopt;
}

// Reads "shape" into info.shape and sets numel and n_bytes, guarding every product.
void parse_shape(const std::string& where, const json& entry, TensorInfo& info) {
  const auto shape = entry.find("shape");
  PIPEPRUNE_CHECK(shape != entry.end() && shape->is_array(), FormatError,
                  where << ": \"shape\" is missing or not a JSON array; the file is corrupt");
  int64_t numel = 1;
  for (const json& dim : *shape) {
    const std::optional<int64_t> d = non_negative_int(dim);
    PIPEPRUNE_CHECK(d.has_value(), FormatError,
                    where << ": shape " << shape->dump()
                          << " has a dimension that is not an integer in [0, 2^63); the file is corrupt");
    info.shape.push_back(*d);
    PIPEPRUNE_CHECK(!__builtin_mul_overflow(numel, *d, &numel), FormatError,
                    where << ": shape " << shape->dump() << " overflows a 64-bit element count; the file is corrupt");
  }
  info.numel = numel;
  PIPEPRUNE_CHECK(!__builtin_mul_overflow(numel, element_size(info.dtype), &info.n_bytes), FormatError,
                  where << ": shape " << shape->dump() << " overflows a 64-bit byte count; the file is corrupt");
}

// Validates one header entry against the data area [data_start, data_start + data_size).
TensorInfo parse_entry(const std::string& file, const std::string& name, const json& entry,
                       int64_t data_start, int64_t data_size) {
  const std::string where = file + ": tensor " + name;
  PIPEPRUNE_CHECK(entry.is_object(), FormatError,
                  where << ": header entry is not a JSON object; the file is corrupt");
  TensorInfo info;
  info.name = name;
  const auto dtype = entry.find("dtype");
  PIPEPRUNE_CHECK(dtype != entry.end() && dtype->is_string(), FormatError,
                  where << ": \"dtype\" is missing or not a string; the file is corrupt");
  const std::optional<DType> parsed = dtype_from_safetensors(dtype->get<std::string>());
  PIPEPRUNE_CHECK(parsed.has_value(), FormatError,
                  where << " has dtype " << dtype->get<std::string>()
                        << "; pipeprune reads F32, F16 and BF16");
  info.dtype = *parsed;
  parse_shape(where, entry, info);

  const auto offsets = entry.find("data_offsets");
  PIPEPRUNE_CHECK(offsets != entry.end() && offsets->is_array() && offsets->size() == 2, FormatError,
                  where << ": \"data_offsets\" is missing or not a [begin, end] array; the file is corrupt");
  const std::optional<int64_t> begin = non_negative_int((*offsets)[0]);
  const std::optional<int64_t> end = non_negative_int((*offsets)[1]);
  PIPEPRUNE_CHECK(begin && end && *begin <= *end, FormatError,
                  where << ": data_offsets " << offsets->dump()
                        << " are not integers with 0 <= begin <= end; the file is corrupt");
  PIPEPRUNE_CHECK(*end <= data_size, FormatError,
                  where << ": data_offsets " << offsets->dump() << " run past the end of the data area ("
                        << data_size << " bytes); the file is truncated or corrupt");
  PIPEPRUNE_CHECK(*end - *begin == info.n_bytes, FormatError,
                  where << ": shape " << shape_text(info.shape) << " of " << safetensors_name(info.dtype)
                        << " needs " << info.n_bytes << " bytes but data_offsets " << offsets->dump()
                        << " span " << (*end - *begin) << "; the file is corrupt");
  info.file_offset = data_start + *begin;
  return info;
}

std::map<std::string, std::string> parse_metadata(const std::string& file, const json& value) {
  PIPEPRUNE_CHECK(value.is_object(), FormatError,
                  file << ": __metadata__ is not a JSON object of strings; the file is corrupt");
  std::map<std::string, std::string> out;
  for (const auto& [key, v] : value.items()) {
    PIPEPRUNE_CHECK(v.is_string(), FormatError,
                    file << ": __metadata__ value of \"" << key << "\" is not a string; the file is corrupt");
    out[key] = v.get<std::string>();
  }
  return out;
}

// Sorted by data offset, a tensor must start at or after the end of the one before it.
void check_no_overlap(const std::string& file, std::vector<TensorInfo>& tensors) {
  std::sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.file_offset != b.file_offset ? a.file_offset < b.file_offset : a.n_bytes < b.n_bytes;
  });
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& t : tensors) {
    if (t.n_bytes == 0) continue;  // an empty tensor occupies no bytes and cannot overlap
    if (previous != nullptr) {
      PIPEPRUNE_CHECK(previous->file_offset + previous->n_bytes <= t.file_offset, FormatError,
                      file << ": tensors " << previous->name << " and " << t.name
                           << " overlap in the data area; the file is corrupt");
    }
    previous = &t;
  }
}

void advise(const uint8_t* begin, int64_t n_bytes, int advice) {
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t first = reinterpret_cast<uintptr_t>(begin) & ~(page - 1);
  const uintptr_t last = reinterpret_cast<uintptr_t>(begin) + static_cast<uintptr_t>(n_bytes);
  // Advice only; a failure changes speed or residency, never the bytes read.
  (void)madvise(reinterpret_cast<void*>(first), last - first, advice);
}

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::map_file(const std::filesystem::path& path, int64_t min_size) {
  const std::string file = path.string();
  std::shared_ptr<SafetensorsFile> out(new SafetensorsFile());
  out->path_ = path;
  // Closed on every path; the mapping stays valid after close.
  const UniqueFd fd = open_fd(file, O_RDONLY, "reading");
  struct stat st {};
  PIPEPRUNE_CHECK(fstat(fd.get(), &st) == 0, IoError, file << ": cannot stat (" << std::strerror(errno) << ")");
  PIPEPRUNE_CHECK(S_ISREG(st.st_mode), IoError, file << ": not a regular file");
  out->size_ = static_cast<int64_t>(st.st_size);
  PIPEPRUNE_CHECK(out->size_ >= min_size && out->size_ > 0, FormatError,
                  file << ": " << out->size_ << " bytes is too short for a "
                       << (min_size >= 8 ? "safetensors file (no 8-byte header length)" : "checkpoint")
                       << "; the file is empty or truncated");
  void* base = mmap(nullptr, static_cast<size_t>(out->size_), PROT_READ, MAP_PRIVATE, fd.get(), 0);
  PIPEPRUNE_CHECK(base != MAP_FAILED, IoError,
                  file << ": cannot mmap " << out->size_ << " bytes (" << std::strerror(errno) << ")");
  out->base_ = static_cast<const uint8_t*>(base);
  return out;
}

std::shared_ptr<const SafetensorsFile> SafetensorsFile::open_pytorch_bin(const std::filesystem::path& path) {
  std::shared_ptr<SafetensorsFile> out = map_file(path, 1);
  out->pytorch_bin_ = true;
  // No overlap check here: tensors sharing a storage (tied embeddings, views) overlap by
  // design, and distinct storages are distinct zip records.
  out->tensors_ = read_torch_archive(path.string(), out->base_, out->size_);
  return out;
}

std::shared_ptr<const SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  const std::string file = path.string();
  std::shared_ptr<SafetensorsFile> out = map_file(path, 8);

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | out->base_[i];
  PIPEPRUNE_CHECK(header_len <= static_cast<uint64_t>(kMaxSafetensorsHeaderBytes), FormatError,
                  file << ": header length " << header_len << " exceeds the "
                       << kMaxSafetensorsHeaderBytes << "-byte limit; the file is corrupt or not safetensors");
  PIPEPRUNE_CHECK(static_cast<int64_t>(header_len) <= out->size_ - 8, FormatError,
                  file << ": header length " << header_len << " runs past the end of the file ("
                       << out->size_ << " bytes); the file is truncated");
  const char* text = reinterpret_cast<const char*>(out->base_ + 8);
  json header;
  try {
    header = json::parse(text, text + header_len);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for numbers like 1e405
    PIPEPRUNE_FAIL(FormatError, file << ": header is not valid JSON (" << e.what() << ")");
  }
  PIPEPRUNE_CHECK(header.is_object(), FormatError, file << ": header is not a JSON object; the file is corrupt");

  const int64_t data_start = 8 + static_cast<int64_t>(header_len);
  const int64_t data_size = out->size_ - data_start;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      out->metadata_ = parse_metadata(file, entry);
      continue;
    }
    out->tensors_.push_back(parse_entry(file, name, entry, data_start, data_size));
  }
  check_no_overlap(file, out->tensors_);
  return out;
}

SafetensorsFile::~SafetensorsFile() {
  if (base_ != nullptr) munmap(const_cast<uint8_t*>(base_), static_cast<size_t>(size_));
}

at::Tensor SafetensorsFile::load(const TensorInfo& info) const {
  PIPEPRUNE_CHECK(info.file_offset >= 0 && info.n_bytes >= 0 && info.file_offset + info.n_bytes <= size_,
                  Error, path_.string() << ": tensor " << info.name << " does not belong to this file");
  at::Tensor out = at::empty(info.shape, at::TensorOptions().dtype(to_scalar_type(info.dtype)));
  if (info.n_bytes == 0) return out;
  const uint8_t* src = data(info);
  advise(src, info.n_bytes, MADV_WILLNEED);
  std::memcpy(out.data_ptr(), src, static_cast<size_t>(info.n_bytes));
  // The bytes now live in `out`; dropping the mapped pages keeps resident memory honest
  // (they stay in the page cache, so a second load is still cheap). The kernel's fault-around
  // also maps up to 64 KiB of neighbouring pages on each fault; without widening the range
  // those pages of other tensors would stay mapped and resident memory would creep up layer by
  // layer. Unmapping a neighbour costs nothing: it is still in the page cache.
  constexpr int64_t kFaultAroundSlack = 1 << 20;
  const int64_t lo = std::max<int64_t>(0, info.file_offset - kFaultAroundSlack);
  const int64_t hi = std::min<int64_t>(size_, info.file_offset + info.n_bytes + kFaultAroundSlack);
  advise(base_ + lo, hi - lo, MADV_DONTNEED);
  return out;
}

namespace {

// Checks that a shard name from the index stays inside the model folder.
void check_shard_name(const std::filesystem::path& index, const std::string& shard) {
  const std::filesystem::path p(shard);
  bool inside = !shard.empty() && p.is_relative();
  for (const auto& part : p) inside = inside && part != "..";
  PIPEPRUNE_CHECK(inside, FormatError,
                  index.string() << ": shard name \"" << shard
                                 << "\" is not a file name inside the model folder");
}

}  // namespace

SafetensorsCheckpoint SafetensorsCheckpoint::open(const std::filesystem::path& model_dir) {
  SafetensorsCheckpoint out;
  out.dir_ = model_dir;
  const std::string dir = model_dir.string();
  PIPEPRUNE_CHECK(std::filesystem::is_directory(model_dir), IoError,
                  dir << ": not a folder (give the model folder that holds the *.safetensors files)");
  // transformers' order of preference: safetensors first, a single file before an index.
  struct Layout {
    const char* single;
    const char* index;
    FileOpener open_file;
    bool pytorch_bin;
  };
  for (const Layout& layout : {Layout{kSafetensorsSingleFile, kSafetensorsIndexFile, &SafetensorsFile::open, false},
                               Layout{kPytorchBinSingleFile, kPytorchBinIndexFile, &SafetensorsFile::open_pytorch_bin, true}}) {
    out.pytorch_bin_ = layout.pytorch_bin;
    if (std::filesystem::exists(model_dir / layout.single)) {
      out.files_.push_back(layout.open_file(model_dir / layout.single));
      for (TensorInfo info : out.files_[0]->tensors()) out.tensors_.emplace(info.name, std::move(info));
      out.collect_aliases();
      return out;
    }
    if (std::filesystem::exists(model_dir / layout.index)) {
      out.open_index(model_dir / layout.index, layout.open_file);
      return out;
    }
  }
  PIPEPRUNE_FAIL(IoError, dir << ": no " << kSafetensorsSingleFile << " or " << kSafetensorsIndexFile << " (nor "
                              << kPytorchBinSingleFile << " or " << kPytorchBinIndexFile << ")");
}

void SafetensorsCheckpoint::open_index(const std::filesystem::path& index_path, FileOpener open_file) {
  sharded_ = true;
  const json index = read_json_file(index_path);
  const std::string idx = index_path.string();
  const std::string index_name = index_path.filename().string();
  PIPEPRUNE_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
                  FormatError, idx << ": no \"weight_map\" object (expected {\"weight_map\": {tensor: file}})");
  std::map<std::string, std::string> file_of;
  std::set<std::string> shards;
  for (const auto& [name, file] : index["weight_map"].items()) {
    PIPEPRUNE_CHECK(file.is_string(), FormatError,
                    idx << ": weight_map entry for tensor " << name << " is not a file name string");
    check_shard_name(index_path, file.get<std::string>());
    file_of[name] = file.get<std::string>();
    shards.insert(file.get<std::string>());
  }
  for (const std::string& shard : shards) {
    const std::filesystem::path path = dir_ / shard;
    PIPEPRUNE_CHECK(std::filesystem::exists(path), IoError,
                    path.string() << ": shard named in " << index_name << " does not exist");
    const int file_index = static_cast<int>(files_.size());
    files_.push_back(open_file(path));
    for (TensorInfo info : files_.back()->tensors()) {
      const auto it = file_of.find(info.name);
      PIPEPRUNE_CHECK(it != file_of.end(), FormatError,
                      path.string() << ": tensor " << info.name << " is not listed in " << index_name
                                    << "; the index and the shards do not match");
      PIPEPRUNE_CHECK(it->second == shard, FormatError,
                      path.string() << ": tensor " << info.name << " is stored here but " << index_name
                                    << " assigns it to " << it->second);
      info.file_index = file_index;
      tensors_.emplace(info.name, std::move(info));
    }
  }
  for (const auto& [name, shard] : file_of) {
    PIPEPRUNE_CHECK(tensors_.count(name) != 0, FormatError,
                    idx << ": tensor " << name << " is assigned to " << shard << ", which does not hold it");
  }
  collect_aliases();
}

void SafetensorsCheckpoint::collect_aliases() {
  for (const auto& file : files_) {
    for (const auto& [key, value] : file->metadata()) {
      if (key == "format") continue;
      metadata_.emplace(key, value);
      // safetensors.torch.save_model stores a shared tensor once and records each other name
      // of it as "other name": "stored name" (transformers loads such files).
      if (tensors_.count(key) == 0 && tensors_.count(value) != 0) aliases_.emplace(key, value);
    }
  }
}

const std::string& SafetensorsCheckpoint::stored_name(const std::string& name) const {
  const auto alias = aliases_.find(name);
  return alias == aliases_.end() ? name : alias->second;
}

bool SafetensorsCheckpoint::has(const std::string& name) const { return tensors_.count(stored_name(name)) != 0; }

const TensorInfo& SafetensorsCheckpoint::info(const std::string& name) const {
  const auto it = tensors_.find(stored_name(name));
  PIPEPRUNE_CHECK(it != tensors_.end(), FormatError,
                  dir_.string() << ": checkpoint has no tensor " << name);
  return it->second;
}

std::optional<TensorInfo> SafetensorsCheckpoint::find(const std::string& name) const {
  const auto it = tensors_.find(stored_name(name));
  if (it == tensors_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& entry : tensors_) out.push_back(entry.first);
  return out;
}

at::Tensor SafetensorsCheckpoint::load(const std::string& name) const {
  const TensorInfo& t = info(name);
  return files_.at(static_cast<size_t>(t.file_index))->load(t);
}

std::vector<std::string> SafetensorsCheckpoint::file_names() const {
  std::vector<std::string> out;
  for (const auto& file : files_) out.push_back(file->path().filename().string());
  return out;
}

std::map<std::string, std::string> SafetensorsCheckpoint::weight_map() const {
  const std::vector<std::string> files = file_names();
  std::map<std::string, std::string> out;
  for (const auto& [name, t] : tensors_) out[name] = files.at(static_cast<size_t>(t.file_index));
  return out;
}

int64_t SafetensorsCheckpoint::total_bytes() const {
  int64_t total = 0;
  for (const auto& entry : tensors_) total += entry.second.n_bytes;
  return total;
}

}  // namespace pipeprune
