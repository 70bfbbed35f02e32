// Writing the pruned model from every rank at once: the rank coordination around the one
// checkpoint writer (core/io/checkpoint_writer.h), which owns the staged folder, the layout,
// the side files and the completeness check.
//
// The output keeps every tensor of the input (names, dtypes, shapes) and its sharding, or
// re-shards by --max-shard-size. Which rank writes what: each rank its own decoder layers,
// pruned, together with every other tensor of those layers the input holds (an old
// rotary_emb.inv_freq buffer, say), copied through unchanged; the first rank every tensor that is
// not part of an owned decoder layer (embedding, final norm, lm_head, anything else), copied
// through unchanged, and the side files (config.json, tokenizer files, ...). The first rank then
// checks that every tensor of the input was written by some rank and renames the folder into
// place; any failure there is every rank's error. The staged folder stays registered for abort
// cleanup (dist/abort_cleanup.h) until then. Collective: every rank calls begin() and finish()
// in the same order.
//
// Resume (core/io/run_journal.h): each written layer is fsync'd and then marked done in the
// staged folder's journal. begin() finds an earlier unfinished run's staged folder: without
// `resume` (and without --overwrite) that is an error saying how to resume it; with it, the
// fingerprints must match (else an error naming the field that changed) and the layers already
// done are not written again (done_layers(); staged() reads them back). A folder holding done
// layers is kept when the job fails, so it can be resumed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/io/checkpoint_writer.h"
#include "core/io/run_journal.h"
#include "core/io/safetensors.h"
#include "core/model/layer_weights.h"
#include "dist/transport/transport.h"

namespace pipeprune {

struct ModelWriterOptions {
  std::filesystem::path output;
  bool overwrite = false;
  std::optional<int64_t> max_shard_bytes;  // unset: keep the input's sharding
  // Continue the unfinished run a staged folder holds (its fingerprint must equal this one's).
  bool resume = false;
  // What determines the result (first rank; core/io/run_journal.h), recorded in the journal.
  RunFingerprint fingerprint;
  // Fields added since the journal existed, with the value older builds always ran with
  // (fingerprint_difference's implied_when_unrecorded).
  RunFingerprint fingerprint_implied_when_unrecorded;
};

class ModelWriter {
 public:
  // `n_layers`: the model's decoder layers (tensors of other "model.layers.N." belong to no rank).
  ModelWriter(const SafetensorsCheckpoint& input, const ModelConfig& config, ModelWriterOptions options,
              Transport& transport);
  ~ModelWriter();

  // The first rank creates the staged folder and its planned files; then every rank joins it.
  void begin();
  // The layer's pruned tensors, and the input's other tensors of that layer copied through.
  void write_layer(const DecoderLayerWeights& layer);
  // Every rank flushes; the first rank copies the rest, checks completeness and commits.
  void finish();
  // Layers an earlier run finished (resume), the same set on every rank after begin().
  const std::set<int64_t>& done_layers() const { return done_layers_; }
  // The staged folder as a checkpoint (its finished layers; the planned index makes it readable).
  SafetensorsCheckpoint staged() const;

 private:
  const SafetensorsCheckpoint& input_;
  const ModelConfig& config_;
  ModelWriterOptions options_;
  Transport& transport_;
  std::map<int64_t, std::vector<std::string>> layer_tensors_;  // input tensors by decoder layer
  std::unique_ptr<CheckpointWriter> writer_;
  std::filesystem::path staging_path_;
  std::set<int64_t> done_layers_;
};

// Whether a tensor name belongs to a decoder layer ("model.layers.N.") and which.
std::optional<int64_t> decoder_layer_of(const std::string& tensor_name);

}  // namespace pipeprune
