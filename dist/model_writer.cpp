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
// unwinds through here, main() still has to remove it on this rank before aborting the job,
// unless it holds finished layers (run_abort_cleanup keeps a resumable folder).
ModelWriter::~ModelWriter() {
  if (writer_ && !staging_path_.empty() && !run_journal::done_layers(staging_path_).empty()) {
    try {
      if (transport_.rank() == 0) writer_->keep_staged();
    } catch (...) {
    }
  }
}

namespace {

// The first rank's writer: a fresh staged folder, or the unfinished one of the same run.
std::unique_ptr<CheckpointWriter> open_for_writing(const ModelWriterOptions& options, ShardLayout layout,
                                                   int64_t n_layers) {
  const std::filesystem::path staged = StagedDirectory::staging_path_for(options.output);
  const bool unfinished = run_journal::exists(staged) && !options.overwrite;
  if (unfinished && options.resume) {
    const RunFingerprint saved = *run_journal::read_fingerprint(staged);
    const std::string changed = fingerprint_difference(saved, options.fingerprint, options.fingerprint_implied_when_unrecorded);
    PIPEPRUNE_CHECK(changed.empty(), ConfigError,
                    "--resume: the unfinished run in " << staged.string() << " differs from this command: " << changed
                                                       << "; rerun with its options, or pass --overwrite to start over");
    const size_t done = run_journal::done_layers(staged).size();
    log::info("--resume: {} holds {} of {} layers of the same run; continuing", staged.string(), done, n_layers);
    return std::make_unique<CheckpointWriter>(CheckpointWriter::resume(options.output, options.overwrite, std::move(layout)));
  }
  if (unfinished) {
    const size_t done = run_journal::done_layers(staged).size();
    PIPEPRUNE_CHECK(done == 0, ConfigError,
                    options.output.string() << ": " << staged.string() << " holds an unfinished prune (" << done << " of "
                                            << n_layers << " layers done); rerun the same command with --resume to "
                                            << "continue it, or pass --overwrite to start over");
  }
  if (options.resume) log::info("--resume: no unfinished run for {}; starting from the first layer", options.output.string());
  auto writer = std::make_unique<CheckpointWriter>(CheckpointWriter::create(options.output, options.overwrite, std::move(layout)));
  run_journal::write_fingerprint(writer->staging_path(), options.fingerprint);
  return writer;
}

}  // namespace

void ModelWriter::begin() {
  ShardLayout layout = plan_layout_of(input_, options_.max_shard_bytes);
  // Every rank learns of a refusal (e.g. the output exists) instead of waiting at a barrier.
  std::string done;
  run_on_root(transport_, 0, [&] {
    writer_ = open_for_writing(options_, layout, config_.n_layers);
    done = fmt::format("{}", fmt::join(run_journal::done_layers(writer_->staging_path()), ","));
  });
  if (!writer_) writer_ = std::make_unique<CheckpointWriter>(CheckpointWriter::join(options_.output, std::move(layout)));
  staging_path_ = writer_->staging_path();
  register_abort_cleanup(staging_path_);
  std::stringstream layers(transport_.broadcast_string(done, 0));
  for (std::string layer; std::getline(layers, layer, ',');) done_layers_.insert(std::stoll(layer));
}

SafetensorsCheckpoint ModelWriter::staged() const { return SafetensorsCheckpoint::open(staging_path_); }

void ModelWriter::write_layer(const DecoderLayerWeights& layer) {
  std::set<std::string> pruned;
  for (const auto& [name, tensor] : layer.named_tensors(config_)) {
    writer_->write(name, tensor);
    pruned.insert(name);
  }
  const auto extras = layer_tensors_.find(layer.layer);
  if (extras != layer_tensors_.end()) {
    for (const std::string& name : extras->second) {
      if (pruned.count(name) == 0) writer_->copy_tensor(input_, name);
    }
  }
  // Durable first, then marked done: a resume trusts every marked layer's bytes.
  writer_->sync();
  run_journal::mark_layer_done(staging_path_, layer.layer);
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
  // The layers an earlier run wrote (resume) are in the folder already.
  for (int64_t layer : done_layers_) {
    const auto names = layer_tensors_.find(layer);
    if (names != layer_tensors_.end()) by_others.insert(by_others.end(), names->second.begin(), names->second.end());
  }
  run_on_root(transport_, 0, [&] {
    for (const std::string& name : input_.names()) {
      const std::optional<int64_t> layer = decoder_layer_of(name);
      if (!layer || *layer >= config_.n_layers) writer_->copy_tensor(input_, name);
    }
    writer_->copy_side_files(input_.dir());
    run_journal::remove(staging_path_);
    writer_->commit(by_others);
    log::info("saved the pruned model to {}", options_.output.string());
  });
  unregister_abort_cleanup(staging_path_);
  staging_path_.clear();
}

}  // namespace pipeprune
