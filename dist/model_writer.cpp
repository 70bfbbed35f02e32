#include "dist/model_writer.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <set>
#include <sstream>

#include "core/common/error.h"
#include "core/common/log.h"
#include "dist/abort_cleanup.h"
#include "dist/agreed_errors.h"

namespace pipeprune {

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

ModelWriter::ModelWriter(const SafetensorsCheckpoint& input, const ModelConfig& config, ModelWriterOptions options,
                         Transport& transport)
    : input_(input), config_(config), options_(std::move(options)), transport_(transport) {
  for (const std::string& name : input_.names()) {
    const std::optional<int64_t> layer = decoder_layer_of(name);
    if (layer && *layer < config_.n_layers) layer_tensors_[*layer].push_back(name);
  }
}

// The staging folder stays registered for abort cleanup until finish(): when an exception
// unwinds through here, main() still has to remove it on this rank before aborting the job.
ModelWriter::~ModelWriter() = default;

void ModelWriter::begin() {
  ShardLayout layout = plan_layout_of(input_, options_.max_shard_bytes);
  // Every rank learns of a refusal (e.g. the output exists) instead of waiting at a barrier.
  run_on_root(transport_, 0, [&] {
    writer_ = std::make_unique<CheckpointWriter>(CheckpointWriter::create(options_.output, options_.overwrite, layout));
  });
  if (!writer_) writer_ = std::make_unique<CheckpointWriter>(CheckpointWriter::join(options_.output, std::move(layout)));
  staging_path_ = writer_->staging_path();
  register_abort_cleanup(staging_path_);
}

void ModelWriter::write_layer(const DecoderLayerWeights& layer) {
  std::set<std::string> pruned;
  for (const auto& [name, tensor] : layer.named_tensors(config_)) {
    writer_->write(name, tensor);
    pruned.insert(name);
  }
  const auto extras = layer_tensors_.find(layer.layer);
  if (extras == layer_tensors_.end()) return;
  for (const std::string& name : extras->second) {
    if (pruned.count(name) == 0) writer_->copy_tensor(input_, name);
  }
}

void ModelWriter::finish() {
  // Each rank flushes its own writes: on a shared network filesystem one host's fsync does not
  // cover another's.
  writer_->sync();
  const std::vector<std::string> mine = writer_->written();
  std::vector<std::string> by_others;
  for (const std::string& names : transport_.all_gather_string(fmt::format("{}", fmt::join(mine, "\n")))) {
    std::stringstream lines(names);
    for (std::string name; std::getline(lines, name);) by_others.push_back(name);
  }
  run_on_root(transport_, 0, [&] {
    for (const std::string& name : input_.names()) {
      const std::optional<int64_t> layer = decoder_layer_of(name);
      if (!layer || *layer >= config_.n_layers) writer_->copy_tensor(input_, name);
    }
    writer_->copy_side_files(input_.dir());
    writer_->commit(by_others);
    log::info("saved the pruned model to {}", options_.output.string());
  });
  unregister_abort_cleanup(staging_path_);
  staging_path_.clear();
}

}  // namespace pipeprune
