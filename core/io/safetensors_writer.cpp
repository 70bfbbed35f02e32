#include "core/io/safetensors_writer.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>
#include <sstream>

#include "core/common/error.h"
#include "core/common/files.h"
#include "core/common/shape_text.h"
#include "core/io/safetensors.h"

namespace pipeprune {
namespace {

// The safetensors library orders data by descending dtype enum (F32 > BF16 > F16), then name.
int dtype_rank(DType dtype) {
  switch (dtype) {
    case DType::kF32: return 0;
    case DType::kBF16: return 1;
    case DType::kF16: return 2;
  }
  return 3;
}

int64_t spec_bytes(const TensorSpec& spec) {
  int64_t bytes = element_size(spec.dtype);
  for (const int64_t d : spec.shape) {
    PIPEPRUNE_CHECK(d >= 0, FormatError,
                    "tensor " << spec.name << " has a negative dimension in shape " << shape_text(spec.shape));
    PIPEPRUNE_CHECK(!__builtin_mul_overflow(bytes, d, &bytes), FormatError,
                    "tensor " << spec.name << ": shape " << shape_text(spec.shape) << " overflows a 64-bit byte count");
  }
  return bytes;
}

// Lays out one file: data order, offsets, and the padded header with its length prefix.
void layout_file(const std::vector<const TensorSpec*>& members, int file_index, const FileMetadata& metadata,
                 PlannedFile& file, std::map<std::string, PlannedTensor>& planned) {
  std::vector<const TensorSpec*> order = members;
  std::sort(order.begin(), order.end(), [](const TensorSpec* a, const TensorSpec* b) {
    const int ra = dtype_rank(a->dtype);
    const int rb = dtype_rank(b->dtype);
    return ra != rb ? ra < rb : a->name < b->name;
  });
  // ordered_json keeps insertion order: the safetensors library's key order, not sorted keys.
  nlohmann::ordered_json header;
  header["__metadata__"] = {{"format", "pt"}};
  for (const auto& [key, value] : metadata) {
    if (key != "format") header["__metadata__"][key] = value;
  }
  int64_t offset = 0;
  std::vector<std::pair<std::string, int64_t>> begins;
  for (const TensorSpec* spec : order) {
    const int64_t bytes = spec_bytes(*spec);
    nlohmann::ordered_json entry;
    entry["dtype"] = safetensors_name(spec->dtype);
    entry["shape"] = spec->shape;
    entry["data_offsets"] = {offset, offset + bytes};
    header[spec->name] = std::move(entry);
    planned[spec->name] = PlannedTensor{*spec, file_index, offset, bytes};
    begins.emplace_back(spec->name, offset);
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t n = text.size();
  std::string prefix(8, '\0');
  for (int i = 0; i < 8; ++i) prefix[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  file.header = prefix + text;
  const int64_t data_start = static_cast<int64_t>(file.header.size());
  for (const auto& [name, begin] : begins) planned[name].file_offset = data_start + begin;
  file.total_size = data_start + offset;
}

// Builds the layout from an assignment of each tensor (in `tensors` order) to a file.
ShardLayout build_layout(const std::vector<TensorSpec>& tensors, const std::vector<int>& file_of,
                         const std::vector<std::string>& file_names, const FileMetadata& metadata) {
  ShardLayout layout;
  std::set<std::string> seen;
  std::vector<std::vector<const TensorSpec*>> members(file_names.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    PIPEPRUNE_CHECK(seen.insert(tensors[i].name).second, FormatError,
                    "tensor " << tensors[i].name << " appears twice in the output tensor list");
    members[static_cast<size_t>(file_of[i])].push_back(&tensors[i]);
  }
  layout.files.resize(file_names.size());
  for (size_t f = 0; f < file_names.size(); ++f) {
    layout.files[f].name = file_names[f];
    layout_file(members[f], static_cast<int>(f), metadata, layout.files[f], layout.tensors);
  }
  layout.write_index = layout.files.size() > 1 || layout.files[0].name != kSafetensorsSingleFile;
  return layout;
}

}  // namespace

std::string shard_name(size_t index, size_t count) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return buffer;
}

std::string ShardLayout::index_json() const {
  int64_t total = 0;
  nlohmann::json weight_map = nlohmann::json::object();
  for (const auto& [name, t] : tensors) {
    total += t.n_bytes;
    weight_map[name] = files.at(static_cast<size_t>(t.file_index)).name;
  }
  const nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  // ensure_ascii like Python's json.dumps, which transformers uses.
  return index.dump(2, ' ', /*ensure_ascii=*/true) + "\n";
}

ShardLayout plan_layout_by_size(const std::vector<TensorSpec>& tensors, int64_t max_shard_bytes,
                                const FileMetadata& metadata) {
  PIPEPRUNE_CHECK(max_shard_bytes > 0, ConfigError,
                  "maximum shard size must be positive (got " << max_shard_bytes << " bytes)");
  std::vector<int> file_of;
  int files = 0;
  int64_t used = 0;
  for (const TensorSpec& spec : tensors) {
    const int64_t bytes = spec_bytes(spec);
    // A new file when this tensor would overflow a non-empty one; a tensor larger than the
    // limit therefore sits alone, and the next tensor starts another file.
    if (files == 0 || (used > 0 && bytes > max_shard_bytes - used)) {
      ++files;
      used = 0;
    }
    file_of.push_back(files - 1);
    used += bytes;
  }
  if (files == 0) files = 1;
  std::vector<std::string> names;
  for (int f = 0; f < files; ++f) {
    names.push_back(files == 1 ? kSafetensorsSingleFile : shard_name(static_cast<size_t>(f), static_cast<size_t>(files)));
  }
  return build_layout(tensors, file_of, names, metadata);
}

ShardLayout plan_layout_like(const std::vector<TensorSpec>& tensors,
                             const std::map<std::string, std::string>& file_of,
                             const std::vector<std::string>& file_order, const FileMetadata& metadata) {
  PIPEPRUNE_CHECK(!file_order.empty(), FormatError, "the layout to copy lists no files");
  std::map<std::string, int> position;
  for (size_t i = 0; i < file_order.size(); ++i) {
    PIPEPRUNE_CHECK(position.emplace(file_order[i], static_cast<int>(i)).second, FormatError,
                    "file " << file_order[i] << " appears twice in the layout to copy");
  }
  std::vector<int> assignment;
  for (const TensorSpec& spec : tensors) {
    const auto file = file_of.find(spec.name);
    PIPEPRUNE_CHECK(file != file_of.end(), FormatError,
                    "tensor " << spec.name << " has no file in the layout to copy");
    const auto index = position.find(file->second);
    PIPEPRUNE_CHECK(index != position.end(), FormatError,
                    "tensor " << spec.name << " is assigned to " << file->second
                              << ", which is not among the files of the layout to copy");
    assignment.push_back(index->second);
  }
  return build_layout(tensors, assignment, file_order, metadata);
}

// ------------------------------------------------------------------------------------------------

namespace {

// Reserves the blocks of a new file so a full disk fails here, not at a later write.
void reserve(int fd, int64_t size, const std::string& file) {
  if (size == 0) return;
  if (::fallocate(fd, 0, 0, static_cast<off_t>(size)) == 0) return;
  const int err = errno;
  PIPEPRUNE_CHECK(err == EOPNOTSUPP || err == ENOSYS || err == EINVAL, IoError,
                  file << ": cannot reserve " << size << " bytes (" << std::strerror(err)
                       << "); free disk space or choose another output folder");
  PIPEPRUNE_CHECK(::ftruncate(fd, static_cast<off_t>(size)) == 0, IoError,
                  file << ": cannot set the size to " << size << " bytes (" << std::strerror(errno) << ")");
}

void fsync_file(const std::string& file) {
  UniqueFd fd = open_fd(file, O_WRONLY, "flushing");
  fsync_fd(fd.get(), file);
  fd.close_checked(file);
}

}  // namespace

struct ShardWriter::State {
  std::mutex mutex;
  std::map<std::string, int64_t> bytes_written;  // per tensor, front to back
  std::set<int> touched_files;
};

ShardWriter::ShardWriter(std::filesystem::path dir, ShardLayout layout)
    : dir_(std::move(dir)), layout_(std::move(layout)), state_(std::make_unique<State>()) {}
ShardWriter::~ShardWriter() = default;
ShardWriter::ShardWriter(ShardWriter&&) noexcept = default;
ShardWriter& ShardWriter::operator=(ShardWriter&&) noexcept = default;

void ShardWriter::create_files() {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  PIPEPRUNE_CHECK(!ec, IoError, dir_.string() << ": cannot create folder (" << ec.message() << ")");
  for (const PlannedFile& planned : layout_.files) {
    const std::string file = (dir_ / planned.name).string();
    UniqueFd fd = open_fd(file, O_WRONLY | O_CREAT | O_TRUNC, "writing");
    reserve(fd.get(), planned.total_size, file);
    pwrite_all(fd.get(), planned.header.data(), static_cast<int64_t>(planned.header.size()), 0, file, "the header");
    fd.close_checked(file);
  }
  // Written now as well as in finish(): the staged folder is then a readable checkpoint, whose
  // finished layers a resumed run reads back.
  if (layout_.write_index) write_file_atomic(dir_ / kSafetensorsIndexFile, layout_.index_json());
}

const PlannedTensor& ShardWriter::planned(const std::string& name) const {
  const auto it = layout_.tensors.find(name);
  PIPEPRUNE_CHECK(it != layout_.tensors.end(), FormatError,
                  dir_.string() << ": tensor " << name << " is not in the planned output layout");
  return it->second;
}

std::string ShardWriter::file_of(const PlannedTensor& plan) const {
  return (dir_ / layout_.files.at(static_cast<size_t>(plan.file_index)).name).string();
}

void ShardWriter::write(const std::string& name, const at::Tensor& tensor) {
  const PlannedTensor& plan = planned(name);
  const std::string file = file_of(plan);
  PIPEPRUNE_CHECK(tensor.defined(), FormatError, file << ": tensor " << name << " is undefined");
  const c10::ScalarType expected = to_scalar_type(plan.spec.dtype);
  PIPEPRUNE_CHECK(tensor.scalar_type() == expected, FormatError,
                  file << ": tensor " << name << " is " << c10::toString(tensor.scalar_type())
                       << " but the planned layout says " << safetensors_name(plan.spec.dtype)
                       << "; convert it before writing");
  PIPEPRUNE_CHECK(tensor.sizes().vec() == plan.spec.shape, FormatError,
                  file << ": tensor " << name << " has shape " << shape_text(tensor.sizes())
                       << " but the planned layout says " << shape_text(plan.spec.shape));
  const at::Tensor bytes = tensor.device().is_cpu() ? tensor.contiguous() : tensor.to(at::kCPU).contiguous();
  write_bytes(name, 0, bytes.data_ptr(), plan.n_bytes);
}

void ShardWriter::write_bytes(const std::string& name, int64_t offset, const void* data, int64_t n_bytes) {
  const PlannedTensor& plan = planned(name);
  const std::string file = file_of(plan);
  {
    // Each tensor is written once, front to back, so "fully written" is a byte count.
    std::lock_guard<std::mutex> lock(state_->mutex);
    const auto [entry, fresh] = state_->bytes_written.emplace(name, 0);
    int64_t& done = entry->second;
    PIPEPRUNE_CHECK(fresh || done < plan.n_bytes, Error, file << ": tensor " << name << " written twice");
    PIPEPRUNE_CHECK(offset == done, Error,
                    file << ": tensor " << name << " is written front to back: got bytes at " << offset
                         << ", expected " << done);
    PIPEPRUNE_CHECK(n_bytes >= 0 && n_bytes <= plan.n_bytes - done, Error,
                    file << ": " << n_bytes << " bytes at offset " << offset << " overrun tensor " << name << " ("
                         << plan.n_bytes << " bytes)");
    done += n_bytes;
    state_->touched_files.insert(plan.file_index);
  }
  UniqueFd fd = open_fd(file, O_WRONLY, "writing");
  struct stat st {};
  PIPEPRUNE_CHECK(::fstat(fd.get(), &st) == 0 && st.st_size == layout_.files[plan.file_index].total_size,
                  IoError,
                  file << ": is " << st.st_size << " bytes but the planned layout says "
                       << layout_.files[plan.file_index].total_size << "; was it created from another layout?");
  pwrite_all(fd.get(), data, n_bytes, plan.file_offset + offset, file, "tensor " + name);
  fd.close_checked(file);
}

void ShardWriter::sync() {
  std::set<int> files;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    files = state_->touched_files;
  }
  for (const int f : files) fsync_file((dir_ / layout_.files.at(static_cast<size_t>(f)).name).string());
}

void ShardWriter::finish() {
  for (const PlannedFile& planned : layout_.files) fsync_file((dir_ / planned.name).string());
  if (layout_.write_index) write_file_atomic(dir_ / kSafetensorsIndexFile, layout_.index_json());
}

std::vector<std::string> ShardWriter::written() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  std::vector<std::string> out;
  for (const auto& [name, plan] : layout_.tensors) {
    const auto it = state_->bytes_written.find(name);
    if (it != state_->bytes_written.end() && it->second == plan.n_bytes) out.push_back(name);
  }
  return out;
}

std::vector<std::string> ShardWriter::missing() const {
  const std::vector<std::string> done = written();
  const std::set<std::string> done_set(done.begin(), done.end());
  std::vector<std::string> out;
  for (const auto& entry : layout_.tensors) {
    if (done_set.count(entry.first) == 0) out.push_back(entry.first);
  }
  return out;
}

}  // namespace pipeprune
