#include "core/io/checkpoint_writer.h"

#include <fstream>

#include <ATen/ATen.h>

#include <algorithm>
#include <map>
#include <set>

#include "core/common/error.h"
#include "core/common/log.h"

namespace pipeprune {
namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

ShardLayout plan_layout_of(const SafetensorsCheckpoint& input, std::optional<int64_t> max_shard_bytes) {
  std::vector<TensorSpec> specs;
  for (const std::string& name : input.names()) {
    const TensorInfo& info = input.info(name);
    specs.push_back(TensorSpec{name, info.dtype, info.shape});
  }
  // pipeprune writes no pickles: the output of a .bin input is safetensors (which transformers
  // also prefers), and copy_side_files() does not copy the input's .bin files or their index.
  if (input.pytorch_bin()) log::info("input is pytorch_model.bin; the output is written as safetensors");
  // The input's own metadata entries (aliases of tied tensors) stay with the output.
  if (max_shard_bytes) return plan_layout_by_size(specs, *max_shard_bytes, input.metadata());
  std::vector<std::string> files = input.file_names();
  std::map<std::string, std::string> file_of = input.weight_map();
  if (input.pytorch_bin()) {
    // The same grouping of tensors into files, under the names save_pretrained gives safetensors.
    std::map<std::string, std::string> renamed;
    for (size_t i = 0; i < files.size(); ++i) {
      renamed[files[i]] = input.sharded() ? shard_name(i, files.size()) : kSafetensorsSingleFile;
      files[i] = renamed[files[i]];
    }
    for (auto& entry : file_of) entry.second = renamed.at(entry.second);
  }
  return plan_layout_like(specs, file_of, files, input.metadata());
}

bool is_weight_file(const std::string& name) {
  for (const char* suffix : {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf"}) {
    if (ends_with(name, suffix)) return true;
  }
  return name == kSafetensorsIndexFile || ends_with(name, ".bin.index.json") || ends_with(name, ".h5.index.json") ||
         ends_with(name, ".msgpack.index.json");
}

CheckpointWriter::CheckpointWriter(std::unique_ptr<StagedDirectory> staged, std::filesystem::path staging_path,
                                   ShardLayout layout)
    : staged_(std::move(staged)),
      staging_path_(std::move(staging_path)),
      shards_(std::make_unique<ShardWriter>(staging_path_, std::move(layout))) {}

CheckpointWriter::CheckpointWriter(CheckpointWriter&&) noexcept = default;
CheckpointWriter& CheckpointWriter::operator=(CheckpointWriter&&) noexcept = default;
CheckpointWriter::~CheckpointWriter() = default;

CheckpointWriter CheckpointWriter::create(std::filesystem::path target, bool overwrite, ShardLayout layout) {
  auto staged = std::make_unique<StagedDirectory>(std::move(target), overwrite);
  const std::filesystem::path path = staged->path();
  CheckpointWriter writer(std::move(staged), path, std::move(layout));
  writer.shards_->create_files();
  return writer;
}

CheckpointWriter CheckpointWriter::resume(std::filesystem::path target, bool overwrite, ShardLayout layout) {
  auto staged = StagedDirectory::adopt(std::move(target), overwrite);
  const std::filesystem::path path = staged->path();
  for (const PlannedFile& planned : layout.files) {
    const std::filesystem::path file = path / planned.name;
    std::error_code ec;
    const auto size = std::filesystem::file_size(file, ec);
    PIPEPRUNE_CHECK(!ec && static_cast<int64_t>(size) == planned.total_size, FormatError,
                    file.string() << ": the unfinished output's file " << (ec ? "is missing" : "has another size")
                                  << " than this run plans; remove " << path.string() << " or pass --overwrite");
    std::string head(planned.header.size(), '\0');
    std::ifstream in(file, std::ios::binary);
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    PIPEPRUNE_CHECK(head == planned.header, FormatError,
                    file.string() << ": the unfinished output's header differs from this run's plan; remove "
                                  << path.string() << " or pass --overwrite");
  }
  return CheckpointWriter(std::move(staged), path, std::move(layout));
}

void CheckpointWriter::keep_staged() {
  require_creator("keep_staged");
  staged_->keep();
}

CheckpointWriter CheckpointWriter::join(const std::filesystem::path& target, ShardLayout layout) {
  return CheckpointWriter(nullptr, StagedDirectory::staging_path_for(target), std::move(layout));
}

void CheckpointWriter::write(const std::string& name, const at::Tensor& tensor) { shards_->write(name, tensor); }

void CheckpointWriter::write_bytes(const std::string& name, int64_t offset, const void* data, int64_t n_bytes) {
  shards_->write_bytes(name, offset, data, n_bytes);
}

void CheckpointWriter::copy_tensor(const SafetensorsCheckpoint& input, const std::string& name) {
  shards_->write(name, input.load(name));
}

void CheckpointWriter::sync() { shards_->sync(); }

std::vector<std::string> CheckpointWriter::written() const { return shards_->written(); }

const ShardLayout& CheckpointWriter::layout() const { return shards_->layout(); }

void CheckpointWriter::require_creator(const char* call) const {
  PIPEPRUNE_CHECK(staged_ != nullptr, Error, "CheckpointWriter::" << call << ": only the writer that created "
                                                                  << staging_path_.string() << " may do this");
}

void CheckpointWriter::add_file(const std::string& name, const std::string& bytes) {
  require_creator("add_file");
  write_file_atomic(staging_path_ / name, bytes);
  added_files_.push_back(name);
}

void CheckpointWriter::copy_side_files(const std::filesystem::path& from, const std::vector<std::string>& names) {
  require_creator("copy_side_files");
  std::vector<std::filesystem::path> sources;
  if (names.empty()) {
    for (const auto& entry : std::filesystem::directory_iterator(from)) {
      if (entry.is_regular_file()) sources.push_back(entry.path());
    }
    std::sort(sources.begin(), sources.end());
  } else {
    for (const std::string& name : names) {
      if (std::filesystem::exists(from / name)) sources.push_back(from / name);
    }
  }
  for (const std::filesystem::path& source : sources) {
    const std::string name = source.filename().string();
    if (std::find(added_files_.begin(), added_files_.end(), name) != added_files_.end()) continue;
    if (is_weight_file(name)) {
      // The output's weights are its own safetensors; another copy of the input's (a .bin next
      // to the safetensors) would hold the unpruned weights under a name transformers may load.
      if (!ends_with(name, ".safetensors") && name != kSafetensorsIndexFile) {
        log::info("{}: not copied to the output (weights in another format; the output holds its own)", source.string());
      }
      continue;
    }
    std::error_code ec;
    std::filesystem::copy_file(source, staging_path_ / name, std::filesystem::copy_options::overwrite_existing, ec);
    PIPEPRUNE_CHECK(!ec, IoError, (staging_path_ / name).string() << ": cannot copy " << source.string() << " ("
                                                                  << ec.message() << ")");
    added_files_.push_back(name);
  }
}

void CheckpointWriter::commit(const std::vector<std::string>& written_elsewhere) {
  require_creator("commit");
  std::set<std::string> done(written_elsewhere.begin(), written_elsewhere.end());
  for (const std::string& name : shards_->written()) done.insert(name);
  std::vector<std::string> missing;
  for (const auto& entry : shards_->layout().tensors) {
    if (done.count(entry.first) == 0) missing.push_back(entry.first);
  }
  PIPEPRUNE_CHECK(missing.empty(), Error,
                  staged_->target().string() << ": tensor " << (missing.empty() ? "" : missing.front())
                                             << " was never written (" << missing.size() << " of "
                                             << shards_->layout().tensors.size()
                                             << " planned tensors missing); the output is incomplete and was not saved");
  shards_->finish();
  staged_->commit();
}

}  // namespace pipeprune
