#include "dist/model_writer.h"

#include <ATen/ATen.h>

#include <map>

#include "core/common/error.h"
#include "core/common/log.h"
#include "dist/abort_cleanup.h"
#include "dist/root_work.h"

namespace pipeprune {
namespace {

ShardLayout plan_output_layout(const SafetensorsCheckpoint& input, const ModelWriterOptions& options) {
  std::vector<TensorSpec> specs;
  std::map<std::string, std::string> file_of;
  const std::vector<std::string> file_names = input.file_names();
  for (const std::string& name : input.names()) {
    const TensorInfo& info = input.info(name);
    specs.push_back(TensorSpec{name, info.dtype, info.shape});
    file_of[name] = file_names[static_cast<size_t>(info.file_index)];
  }
  if (options.max_shard_bytes) return plan_layout_by_size(specs, *options.max_shard_bytes);
  return plan_layout_like(specs, file_of, file_names);
}

}  // namespace

std::optional<int64_t> decoder_layer_of(const std::string& tensor_name) {
  static const std::string prefix = "model.layers.";
  if (tensor_name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  size_t pos = prefix.size();
  int64_t layer = 0;
  bool digits = false;
  while (pos < tensor_name.size() && std::isdigit(static_cast<unsigned char>(tensor_name[pos]))) {
    layer = layer * 10 + (tensor_name[pos] - '0');
    digits = true;
    ++pos;
  }
  if (!digits || pos >= tensor_name.size() || tensor_name[pos] != '.') return std::nullopt;
  return layer;
}

ModelWriter::ModelWriter(const SafetensorsCheckpoint& input, ModelWriterOptions options, Transport& transport)
    : input_(input), options_(std::move(options)), transport_(transport) {}

// The staging folder stays registered for abort cleanup until finish(): when an exception
// unwinds through here, main() still has to remove it on this rank before aborting the job.
ModelWriter::~ModelWriter() = default;

void ModelWriter::begin() {
  // Every rank learns of a refusal (e.g. the output exists) instead of waiting at a barrier.
  run_on_root(transport_, 0, [&] { staged_ = std::make_unique<StagedDirectory>(options_.output, options_.overwrite); });
  staging_path_ = StagedDirectory::staging_path_for(options_.output);
  register_abort_cleanup(staging_path_);
  writer_ = std::make_unique<ShardWriter>(staging_path_, plan_output_layout(input_, options_));
  if (transport_.rank() == 0) writer_->create_files();
  transport_.barrier();
}

void ModelWriter::write_layer(const DecoderLayerWeights& layer) {
  for (const auto& [name, tensor] : layer.named_tensors()) writer_->write(name, tensor);
}

void ModelWriter::copy_non_layer_tensors() {
  for (const std::string& name : input_.names()) {
    if (!decoder_layer_of(name)) writer_->write(name, input_.load(name));
  }
}

void ModelWriter::copy_side_files() {
  for (const auto& entry : std::filesystem::directory_iterator(input_.dir())) {
    if (!entry.is_regular_file()) continue;
    const std::string name = entry.path().filename().string();
    const bool weights = entry.path().extension() == ".safetensors" || name == "model.safetensors.index.json";
    if (weights) continue;
    std::error_code ec;
    std::filesystem::copy_file(entry.path(), staging_path_ / name,
                               std::filesystem::copy_options::overwrite_existing, ec);
    PIPEPRUNE_CHECK(!ec, IoError, (staging_path_ / name).string() << ": cannot copy " << entry.path().string()
                                                                  << " (" << ec.message() << ")");
  }
}

void ModelWriter::finish() {
  // Each rank flushes its own writes: on a shared network filesystem one host's fsync does not
  // cover another's.
  writer_->sync();
  transport_.barrier();
  if (transport_.rank() == 0) {
    copy_non_layer_tensors();
    writer_->finish();
    copy_side_files();
    staged_->commit();
    log::info("saved the pruned model to {}", options_.output.string());
  }
  transport_.barrier();
  unregister_abort_cleanup(staging_path_);
  staging_path_.clear();
}

}  // namespace pipeprune
