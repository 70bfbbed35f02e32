// What a model is, without its weights: the config.json and, for every tensor the config
// implies, its name, stored dtype, shape, byte size and file, read from the safetensors headers
// only. The planner, `estimate` and the writer's layout use it; no tensor data is read.
//
// open() validates that every expected tensor exists with the exact shape the config implies
// (a one-line FormatError naming the tensor otherwise), so a run fails before any work starts.
// Tensors the config does not use (e.g. rotary_emb.inv_freq, a tied lm_head.weight) are listed
// in ignored_tensors and left out of every byte count and of tensor_specs(), as transformers
// ignores them when loading.
//
// Plain value type: copy freely, read from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/common/dtype.h"
#include "core/io/safetensors_writer.h"
#include "core/model/model_config.h"

namespace pipeprune {

struct SpecTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  int64_t n_bytes = 0;
  std::string file;  // file in the checkpoint folder; empty when estimated from a config
};

struct ModelSpec {
  std::filesystem::path model_dir;  // empty when built from a config alone
  ModelConfig config;
  std::vector<std::vector<SpecTensor>> layers;  // [layer] -> its tensors (norms, linears)
  SpecTensor embedding;                         // model.embed_tokens.weight
  // model.norm.weight and lm_head.weight; with tied embeddings the "lm_head" entry is the
  // embedding tensor (the last stage holds a copy of it), but it is written only once.
  std::vector<SpecTensor> head;
  std::vector<std::string> file_names;       // checkpoint files in order
  std::vector<std::string> ignored_tensors;  // in the checkpoint, unused by the config

  // Reads model_dir/config.json and the safetensors headers; validates every expected tensor.
  static ModelSpec open(const std::filesystem::path& model_dir);
  // The same numbers before any checkpoint exists, for `estimate`: every tensor in `dtype`.
  static ModelSpec from_config(const ModelConfig& config, DType dtype);

  int64_t n_layers() const { return static_cast<int64_t>(layers.size()); }
  int64_t bytes_layer(int64_t layer) const;
  int64_t bytes_layers() const;     // all decoder layers
  int64_t bytes_max_layer() const;  // the largest decoder layer
  int64_t bytes_embedding() const { return embedding.n_bytes; }
  int64_t bytes_head() const;       // final norm + lm_head (the tied embedding counted here too)
  int64_t bytes_total() const;      // every distinct tensor once: what the checkpoint holds
  // Dtype of the decoder weights (layer 0's q_proj): the dtype pruned layers are stored in.
  DType layer_dtype() const;

  // Every distinct tensor, in model order (embedding, layers, norm, untied lm_head), for
  // planning an output checkpoint with the same names, dtypes and shapes.
  std::vector<TensorSpec> tensor_specs() const;
  // Tensor name -> checkpoint file, for plan_layout_like() (empty for from_config()).
  std::map<std::string, std::string> file_of() const;
};

}  // namespace pipeprune
