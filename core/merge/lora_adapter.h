// A PEFT LoRA adapter folded into its base model's tensors, as mergekit's `model+adapter` does
// (PeftModel.from_pretrained(...).merge_and_unload()).
//
// The folder holds adapter_config.json and adapter_model.safetensors with PEFT's names, the
// adapter name already removed:
//   base_model.model.<module>.lora_A.weight [r, in]    base_model.model.<module>.lora_B.weight [out, r]
//   base_model.model.<module>.lora_B.bias [out]        (lora_bias)
//   base_model.model.<module>.lora_embedding_A [r, vocab]
//   base_model.model.<module>.lora_embedding_B [dim, r]
//   base_model.model.<module>.base_layer.weight        (save_embedding_layers: the layer's weight,
//                                                      loaded over the base's before the fold)
// open() reads the config and the safetensors header only; fold() loads the two (or three)
// small tensors of one module, so an adapter is never held in memory as a whole.
//
// Refused at open(), each with one line naming the folder: peft_type other than "LORA", r <= 0,
// use_dora, non-empty modules_to_save, an adapter_model.bin without safetensors, bias other
// than "none" unless the file has lora_B.bias tensors, any tensor that is not a LoRA factor (a
// trained base bias, a DoRA magnitude, trainable tokens), a factor without its partner, and
// ranks that disagree between A, B and the module's r (rank_pattern). Config fields absent from
// the JSON take LoraConfig's defaults (r 8, lora_alpha 8, bias "none", the flags false).
//
// Errors: IoError for a missing config or weights file, FormatError for a malformed file,
// ConfigError for what PEFT would accept but this fold does not, and for a base that does not
// match. The object is immutable after open(); any thread may call its methods (the weights
// file is mmap'd read-only, safetensors.h).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "core/io/safetensors.h"

namespace pipeprune {

inline constexpr const char* kAdapterConfigFile = "adapter_config.json";
inline constexpr const char* kAdapterSafetensorsFile = "adapter_model.safetensors";
inline constexpr const char* kAdapterBinFile = "adapter_model.bin";

class LoraAdapter {
 public:
  // Reads and checks the folder (above).
  static LoraAdapter open(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  // Base checkpoint tensor names this adapter changes, sorted: "<module>.weight" for each
  // adapted module (linear or embedding), "<module>.bias" where a lora_B.bias exists.
  std::vector<std::string> targets() const;
  bool changes(const std::string& base_tensor_name) const;
  // Every target exists in `base` with the shape the adapter implies ([out, in], [in, out]
  // with fan_in_fan_out, [vocab, dim] for embeddings, [out] for a bias); otherwise ConfigError
  // "adapter DIR does not match base BASE: TENSOR ...". Call before any work.
  void check_against(const SafetensorsCheckpoint& base) const;
  // base_tensor + delta, computed in fp32 (factors upcast from fp16/bf16) and rounded once to
  // base_tensor's dtype, like PEFT's in-place `W += delta`:
  //   linear    delta = transpose(B @ A, fan_in_fan_out) * scaling   (product first, then scale)
  //   embedding delta = (B @ A).T * scaling                          [vocab, dim]
  //   bias      delta = lora_B.bias * scaling
  // The result lives on base_tensor's device. A name the adapter does not change returns
  // base_tensor itself; a base_tensor of another shape than the adapter's is a ConfigError.
  at::Tensor fold(const std::string& base_tensor_name, const at::Tensor& base_tensor) const;
  // alpha / r, or alpha / sqrt(r) with use_rslora. r and alpha come from rank_pattern /
  // alpha_pattern: the first key k, in the JSON's key order (PEFT iterates the dict it loaded,
  // which keeps the file's order), whose regex "(.*\.)?(k)$" matches the whole module name;
  // else the config's r / lora_alpha. Defined for any module name, adapted or not.
  double scaling(const std::string& module) const;

 private:
  struct Module {
    std::string name;  // e.g. "model.layers.0.self_attn.q_proj"
    bool embedding = false;
    TensorInfo a;                   // lora_A.weight or lora_embedding_A
    TensorInfo b;                   // lora_B.weight or lora_embedding_B
    std::optional<TensorInfo> bias;  // lora_B.bias
    // <module>.base_layer.weight: the layer's own weight saved with the adapter (PEFT's
    // save_embedding_layers, automatic when embed_tokens is a target); it replaces the base's.
    std::optional<TensorInfo> base_layer;
    double scaling = 0.0;
  };
  enum class Part { kWeight, kBias };
  struct Target {
    std::string module;
    Part part = Part::kWeight;
  };
  template <typename Value>
  struct Pattern {
    std::string key;
    std::regex regex;  // "(.*\.)?(key)$"
    Value value;
  };

  // The factors found in the file for one module.
  struct Factors {
    std::optional<TensorInfo> a, b, bias, embedding_a, embedding_b;
  };

  LoraAdapter() = default;
  void read_config(const std::filesystem::path& config_path);
  void read_modules();
  void add_module(const std::string& name, const Factors& factors);
  void check_module(const Module& module) const;
  int64_t rank_of(const std::string& module) const;
  double alpha_of(const std::string& module) const;
  // The shape of the base tensor `target` changes.
  std::vector<int64_t> target_shape(const Target& target) const;
  const Target* find_target(const std::string& base_tensor_name) const;

  std::filesystem::path dir_;
  std::shared_ptr<const SafetensorsFile> file_;
  int64_t r_ = 8;
  double alpha_ = 8.0;
  bool use_rslora_ = false;
  bool fan_in_fan_out_ = false;
  std::string bias_ = "none";
  std::vector<Pattern<int64_t>> rank_pattern_;
  std::vector<Pattern<double>> alpha_pattern_;
  std::map<std::string, Module> modules_;  // by module name
  std::map<std::string, Target> targets_;  // by base tensor name
};

}  // namespace pipeprune
