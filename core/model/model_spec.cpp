#include "core/model/model_spec.h"

#include <c10/util/accumulate.h>

#include <set>

#include "core/common/error.h"
#include "core/common/log.h"
#include "core/io/safetensors.h"
#include "core/model/layer_weights.h"
#include "core/model/tensor_checks.h"

namespace pipeprune {
namespace {

SpecTensor from_checkpoint(const SafetensorsCheckpoint& checkpoint, const ExpectedTensor& expected,
                           const std::vector<std::string>& file_names) {
  const TensorInfo info = require_tensor(checkpoint, expected);
  return {info.name, info.dtype, info.shape, info.n_bytes, file_names.at(info.file_index)};
}

SpecTensor from_shape(const ExpectedTensor& expected, DType dtype) {
  return {expected.name, dtype, expected.shape, c10::multiply_integers(expected.shape) * element_size(dtype), ""};
}

// Builds a spec with `make(expected)` giving each expected tensor's entry.
template <typename Make>
ModelSpec build(const ModelConfig& config, Make make) {
  ModelSpec spec;
  spec.config = config;
  spec.embedding = make(expected_embedding_tensor(config));
  for (int64_t l = 0; l < config.n_layers; ++l) {
    std::vector<SpecTensor> tensors;
    for (const ExpectedTensor& expected : expected_layer_tensors(config, l)) tensors.push_back(make(expected));
    spec.layers.push_back(std::move(tensors));
  }
  for (const ExpectedTensor& expected : expected_head_tensors(config)) spec.head.push_back(make(expected));
  if (config.tie_word_embeddings) spec.head.push_back(spec.embedding);
  return spec;
}

int64_t sum_bytes(const std::vector<SpecTensor>& tensors) {
  int64_t total = 0;
  for (const SpecTensor& t : tensors) total += t.n_bytes;
  return total;
}

bool is_quietly_ignored(const std::string& name, const ModelConfig& config) {
  const std::string suffix = "rotary_emb.inv_freq";
  const bool inv_freq = name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  return inv_freq || (config.tie_word_embeddings && name == kLmHeadName);
}

}  // namespace

ModelSpec ModelSpec::open(const std::filesystem::path& model_dir) {
  const ModelConfig config = ModelConfig::from_file(model_dir / "config.json");
  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(model_dir);
  const std::vector<std::string> files = checkpoint.file_names();
  const std::string embedding_name = embedding_tensor_name(checkpoint, config);
  ModelSpec spec = build(config, [&](ExpectedTensor e) {
    if (e.name == kEmbedTokensName) e.name = embedding_name;
    return from_checkpoint(checkpoint, e, files);
  });
  spec.model_dir = model_dir;
  spec.file_names = files;

  std::set<std::string> used;
  for (const TensorSpec& t : spec.tensor_specs()) used.insert(t.name);
  int n_surprising = 0;
  for (const std::string& name : checkpoint.names()) {
    if (used.count(name)) continue;
    // A weight inside a decoder layer that this config does not use means config.json and the
    // checkpoint disagree (a q_norm without qwen3, a bias without attention_bias, a fused or
    // quantized layout): ignoring it would run a different model. Buffers (rotary_emb.inv_freq)
    // and empty tensors pass through.
    const bool in_layer = name.rfind("model.layers.", 0) == 0;
    const bool quiet = is_quietly_ignored(name, config) || checkpoint.info(name).numel == 0;
    PIPEPRUNE_CHECK(!in_layer || quiet, FormatError,
                    model_dir.string() << ": tensor " << name << " is inside a decoder layer but a " << config.model_type
                                       << " model with this config.json has no such weight; check that config.json "
                                       << "belongs to this checkpoint (model_type, attention_bias, mlp_bias)");
    spec.ignored_tensors.push_back(name);
    if (!quiet && n_surprising++ == 0) {
      log::warn("{}: tensor {} is not used by a {} model with this config.json; ignored", model_dir.string(),
                name, config.model_type);
    }
  }
  if (n_surprising > 1) log::warn("{}: {} unused tensors ignored in all", model_dir.string(), n_surprising);
  return spec;
}

ModelSpec ModelSpec::from_config(const ModelConfig& config, DType dtype) {
  return build(config, [&](const ExpectedTensor& e) { return from_shape(e, dtype); });
}

int64_t ModelSpec::bytes_layer(int64_t layer) const {
  PIPEPRUNE_CHECK(layer >= 0 && layer < n_layers(), Error,
                  "decoder layer " << layer << " does not exist (the model has " << n_layers() << ")");
  return sum_bytes(layers[layer]);
}

int64_t ModelSpec::bytes_layers() const {
  int64_t total = 0;
  for (const auto& layer : layers) total += sum_bytes(layer);
  return total;
}

int64_t ModelSpec::bytes_max_layer() const {
  int64_t largest = 0;
  for (const auto& layer : layers) largest = std::max(largest, sum_bytes(layer));
  return largest;
}

int64_t ModelSpec::bytes_head() const { return sum_bytes(head); }

int64_t ModelSpec::bytes_total() const {
  int64_t total = 0;
  for (const TensorSpec& t : tensor_specs()) total += c10::multiply_integers(t.shape) * element_size(t.dtype);
  return total;
}

DType ModelSpec::layer_dtype() const {
  const std::string q_proj = layer_tensor_name(0, std::string(linear_name(config, LinearKind::kQ)) + ".weight");
  for (const SpecTensor& t : layers.at(0)) {
    if (t.name == q_proj) return t.dtype;
  }
  return layers.at(0).at(0).dtype;
}

std::vector<TensorSpec> ModelSpec::tensor_specs() const {
  std::vector<TensorSpec> out;
  auto add = [&](const SpecTensor& t) { out.push_back({t.name, t.dtype, t.shape}); };
  add(embedding);
  for (const auto& layer : layers) {
    for (const SpecTensor& t : layer) add(t);
  }
  for (const SpecTensor& t : head) {
    if (t.name != embedding.name) add(t);
  }
  return out;
}

std::map<std::string, std::string> ModelSpec::file_of() const {
  std::map<std::string, std::string> out;
  auto add = [&](const SpecTensor& t) {
    if (!t.file.empty()) out[t.name] = t.file;
  };
  add(embedding);
  for (const auto& layer : layers) {
    for (const SpecTensor& t : layer) add(t);
  }
  for (const SpecTensor& t : head) add(t);
  return out;
}

}  // namespace pipeprune
