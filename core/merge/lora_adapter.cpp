#include "core/merge/lora_adapter.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

#include "core/common/error.h"
#include "core/common/files.h"
#include "core/common/shape_text.h"

namespace pipeprune {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

namespace {

// PEFT saves every adapted module's parameters under the wrapped model's names.
constexpr const char* kPeftPrefix = "base_model.model.";

// The suffixes of a LoRA factor's name after "<module>".
enum class Factor { kA, kB, kBias, kEmbeddingA, kEmbeddingB };
struct FactorSuffix {
  const char* suffix;
  Factor factor;
};
constexpr FactorSuffix kFactorSuffixes[] = {
    {".lora_A.weight", Factor::kA},
    {".lora_B.weight", Factor::kB},
    {".lora_B.bias", Factor::kBias},
    {".lora_embedding_A", Factor::kEmbeddingA},
    {".lora_embedding_B", Factor::kEmbeddingB},
};

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "base_model.model.<module><suffix>" -> (module, factor); nullopt for any other name.
std::optional<std::pair<std::string, Factor>> parse_factor_name(const std::string& name) {
  const size_t prefix = std::strlen(kPeftPrefix);
  if (name.compare(0, prefix, kPeftPrefix) != 0) return std::nullopt;
  for (const FactorSuffix& s : kFactorSuffixes) {
    const size_t suffix = std::strlen(s.suffix);
    if (name.size() > prefix + suffix && ends_with(name, s.suffix)) {
      return std::make_pair(name.substr(prefix, name.size() - prefix - suffix), s.factor);
    }
  }
  return std::nullopt;
}

// A config field that may be absent or null (LoraConfig's default then applies).
const Json* field(const Json& config, const char* name) {
  const auto it = config.find(name);
  return it == config.end() || it->is_null() ? nullptr : &*it;
}

bool bool_field(const Json& config, const char* name, const fs::path& path) {
  const Json* value = field(config, name);
  if (value == nullptr) return false;
  PIPEPRUNE_CHECK(value->is_boolean(), FormatError, path.string() << ": \"" << name << "\" must be true or false");
  return value->get<bool>();
}

// "(.*\.)?(key)$" as PEFT's get_pattern_key builds it; std::regex_match anchors both ends,
// as re.match (start) with the trailing $ does.
std::regex pattern_regex(const std::string& key, const char* field_name, const fs::path& path) {
  try {
    return std::regex("(.*\\.)?(" + key + ")$");
  } catch (const std::regex_error& e) {
    PIPEPRUNE_FAIL(ConfigError, path.string() << ": \"" << field_name << "\" key \"" << key
                                              << "\" is not a regular expression this reader accepts (" << e.what()
                                              << ")");
  }
}

}  // namespace

LoraAdapter LoraAdapter::open(const fs::path& dir) {
  LoraAdapter adapter;
  adapter.dir_ = dir;
  PIPEPRUNE_CHECK(fs::is_directory(dir), IoError,
                  dir.string() << ": not a folder; pass a PEFT LoRA adapter folder (adapter_config.json and "
                                  "adapter_model.safetensors, as save_pretrained writes them)");
  const fs::path config_path = dir / kAdapterConfigFile;
  PIPEPRUNE_CHECK(fs::exists(config_path), IoError,
                  dir.string() << ": no " << kAdapterConfigFile
                               << "; a PEFT LoRA adapter folder holds adapter_config.json and adapter_model.safetensors");
  adapter.read_config(config_path);
  adapter.read_modules();
  return adapter;
}

void LoraAdapter::read_config(const fs::path& path) {
  Json config;
  try {
    config = Json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    PIPEPRUNE_FAIL(FormatError, path.string() << ": invalid JSON (" << e.what() << ")");
  }
  PIPEPRUNE_CHECK(config.is_object(), FormatError, path.string() << ": not a JSON object");

  const Json* peft_type = field(config, "peft_type");
  PIPEPRUNE_CHECK(peft_type != nullptr && peft_type->is_string() && peft_type->get<std::string>() == "LORA",
                  ConfigError,
                  path.string() << ": peft_type is " << (peft_type ? peft_type->dump() : std::string("missing"))
                                << "; only LoRA adapters (peft_type \"LORA\") can be folded");
  PIPEPRUNE_CHECK(!bool_field(config, "use_dora", path), ConfigError,
                  path.string() << ": use_dora is true; DoRA adapters are not supported (merge it with PEFT's "
                                   "merge_and_unload() and pass the merged model instead)");
  if (const Json* modules = field(config, "modules_to_save")) {
    PIPEPRUNE_CHECK(modules->is_array() && modules->empty(), ConfigError,
                    path.string() << ": modules_to_save is " << modules->dump()
                                  << "; adapters that replace whole modules are not supported (merge it with PEFT's "
                                     "merge_and_unload() and pass the merged model instead)");
  }
  if (const Json* r = field(config, "r")) {
    PIPEPRUNE_CHECK(r->is_number_integer(), FormatError, path.string() << ": \"r\" must be an integer, not " << r->dump());
    r_ = r->get<int64_t>();
  }
  PIPEPRUNE_CHECK(r_ > 0, ConfigError, path.string() << ": r is " << r_ << "; the LoRA rank must be positive");
  if (const Json* alpha = field(config, "lora_alpha")) {
    PIPEPRUNE_CHECK(alpha->is_number(), FormatError, path.string() << ": \"lora_alpha\" must be a number");
    alpha_ = alpha->get<double>();
  }
  use_rslora_ = bool_field(config, "use_rslora", path);
  fan_in_fan_out_ = bool_field(config, "fan_in_fan_out", path);
  if (const Json* bias = field(config, "bias")) {
    PIPEPRUNE_CHECK(bias->is_string(), FormatError, path.string() << ": \"bias\" must be a string");
    bias_ = bias->get<std::string>();
  }

  if (const Json* pattern = field(config, "rank_pattern")) {
    PIPEPRUNE_CHECK(pattern->is_object(), FormatError, path.string() << ": \"rank_pattern\" must be an object");
    for (const auto& [key, value] : pattern->items()) {
      PIPEPRUNE_CHECK(value.is_number_integer() && value.get<int64_t>() > 0, ConfigError,
                      path.string() << ": rank_pattern[\"" << key << "\"] is " << value.dump()
                                    << "; a rank must be a positive integer");
      rank_pattern_.push_back({key, pattern_regex(key, "rank_pattern", path), value.get<int64_t>()});
    }
  }
  if (const Json* pattern = field(config, "alpha_pattern")) {
    PIPEPRUNE_CHECK(pattern->is_object(), FormatError, path.string() << ": \"alpha_pattern\" must be an object");
    for (const auto& [key, value] : pattern->items()) {
      PIPEPRUNE_CHECK(value.is_number(), ConfigError,
                      path.string() << ": alpha_pattern[\"" << key << "\"] is " << value.dump() << "; must be a number");
      alpha_pattern_.push_back({key, pattern_regex(key, "alpha_pattern", path), value.get<double>()});
    }
  }
}

void LoraAdapter::read_modules() {
  const fs::path path = dir_ / kAdapterSafetensorsFile;
  if (!fs::exists(path)) {
    PIPEPRUNE_CHECK(!fs::exists(dir_ / kAdapterBinFile), ConfigError,
                    dir_.string() << ": only " << kAdapterBinFile << " is present; save the adapter as safetensors "
                                  << "(PeftModel.save_pretrained(dir, safe_serialization=True)) and retry");
    PIPEPRUNE_FAIL(IoError, dir_.string() << ": no " << kAdapterSafetensorsFile
                                          << "; a PEFT LoRA adapter folder holds adapter_config.json and "
                                             "adapter_model.safetensors");
  }
  file_ = SafetensorsFile::open(path);

  std::map<std::string, Factors> found;
  std::map<std::string, TensorInfo> base_layers;
  const std::string prefix = "base_model.model.";
  const std::string base_layer_suffix = ".base_layer.weight";
  for (const TensorInfo& info : file_->tensors()) {
    const std::string& n = info.name;
    if (n.size() > prefix.size() + base_layer_suffix.size() && n.compare(0, prefix.size(), prefix) == 0 &&
        n.compare(n.size() - base_layer_suffix.size(), base_layer_suffix.size(), base_layer_suffix) == 0) {
      base_layers[n.substr(prefix.size(), n.size() - prefix.size() - base_layer_suffix.size())] = info;
      continue;
    }
    const std::optional<std::pair<std::string, Factor>> parsed = parse_factor_name(info.name);
    PIPEPRUNE_CHECK(parsed.has_value(), ConfigError,
                    path.string() << ": tensor " << info.name
                                  << " is not a LoRA factor (base_model.model.<module>.lora_A.weight / .lora_B.weight /"
                                     " .lora_B.bias / .lora_embedding_A / .lora_embedding_B); adapters that also train "
                                     "base parameters are not supported");
    const auto& [module, factor] = *parsed;
    Factors& entry = found[module];
    std::optional<TensorInfo>* slot = factor == Factor::kA            ? &entry.a
                                      : factor == Factor::kB          ? &entry.b
                                      : factor == Factor::kBias       ? &entry.bias
                                      : factor == Factor::kEmbeddingA ? &entry.embedding_a
                                                                      : &entry.embedding_b;
    *slot = info;
  }
  PIPEPRUNE_CHECK(!found.empty(), FormatError, path.string() << ": holds no LoRA tensors");

  bool any_bias = false;
  for (auto& [name, entry] : found) {
    any_bias = any_bias || entry.bias.has_value();
    add_module(name, entry);
  }
  for (const auto& [name, info] : base_layers) {
    const auto module = modules_.find(name);
    PIPEPRUNE_CHECK(module != modules_.end(), ConfigError,
                    path.string() << ": " << info.name << " is a saved base layer of " << name
                                  << ", which has no LoRA factors; adapters that train base parameters are not supported");
    module->second.base_layer = info;
  }
  PIPEPRUNE_CHECK(bias_ == "none" || any_bias, ConfigError,
                  (dir_ / kAdapterConfigFile).string()
                      << ": bias is \"" << bias_
                      << "\" but the adapter has no lora_B.bias tensors; adapters that train the base model's biases "
                         "are not supported (merge it with PEFT's merge_and_unload() instead)");
}

void LoraAdapter::add_module(const std::string& name, const Factors& entry) {
  const fs::path path = dir_ / kAdapterSafetensorsFile;
  Module module;
  module.name = name;
  const bool linear = entry.a || entry.b || entry.bias;
  module.embedding = entry.embedding_a || entry.embedding_b;
  PIPEPRUNE_CHECK(!(linear && module.embedding), FormatError,
                  path.string() << ": module " << name << " has both lora_A/lora_B and lora_embedding factors");
  const char* a_name = module.embedding ? "lora_embedding_A" : "lora_A.weight";
  const char* b_name = module.embedding ? "lora_embedding_B" : "lora_B.weight";
  const std::optional<TensorInfo>& a = module.embedding ? entry.embedding_a : entry.a;
  const std::optional<TensorInfo>& b = module.embedding ? entry.embedding_b : entry.b;
  PIPEPRUNE_CHECK(a && b, FormatError,
                  path.string() << ": module " << name << " has " << (a ? a_name : b ? b_name : "lora_B.bias")
                                << " but no " << (a ? b_name : b ? a_name : "lora_A.weight / lora_B.weight")
                                << "; the adapter file is incomplete");
  module.a = *a;
  module.b = *b;
  module.bias = entry.bias;
  check_module(module);
  module.scaling = scaling(name);
  targets_[name + ".weight"] = Target{name, Part::kWeight};
  if (module.bias) targets_[name + ".bias"] = Target{name, Part::kBias};
  modules_.emplace(name, std::move(module));
}

void LoraAdapter::check_module(const Module& module) const {
  const fs::path path = dir_ / kAdapterSafetensorsFile;
  PIPEPRUNE_CHECK(module.a.shape.size() == 2 && module.b.shape.size() == 2, FormatError,
                  path.string() << ": module " << module.name << ": LoRA factors must be matrices, got A "
                                << shape_text(module.a.shape) << " and B " << shape_text(module.b.shape));
  const int64_t rank_a = module.a.shape[0];
  const int64_t rank_b = module.b.shape[1];
  PIPEPRUNE_CHECK(rank_a == rank_b, FormatError,
                  path.string() << ": module " << module.name << ": A " << shape_text(module.a.shape) << " and B "
                                << shape_text(module.b.shape) << " disagree on the rank (" << rank_a << " vs " << rank_b
                                << ")");
  const int64_t rank = rank_of(module.name);
  PIPEPRUNE_CHECK(rank_a == rank, FormatError,
                  path.string() << ": module " << module.name << " has rank " << rank_a << " but "
                                << kAdapterConfigFile << " gives it r = " << rank
                                << " (r / rank_pattern); the config and the weights are from different adapters");
  if (module.bias) {
    PIPEPRUNE_CHECK(module.bias->shape.size() == 1 && module.bias->shape[0] == module.b.shape[0], FormatError,
                    path.string() << ": module " << module.name << ": lora_B.bias " << shape_text(module.bias->shape)
                                  << " does not match lora_B.weight " << shape_text(module.b.shape));
  }
}

int64_t LoraAdapter::rank_of(const std::string& module) const {
  for (const auto& pattern : rank_pattern_) {
    if (std::regex_match(module, pattern.regex)) return pattern.value;
  }
  return r_;
}

double LoraAdapter::alpha_of(const std::string& module) const {
  for (const auto& pattern : alpha_pattern_) {
    if (std::regex_match(module, pattern.regex)) return pattern.value;
  }
  return alpha_;
}

double LoraAdapter::scaling(const std::string& module) const {
  const double r = static_cast<double>(rank_of(module));
  const double alpha = alpha_of(module);
  return use_rslora_ ? alpha / std::sqrt(r) : alpha / r;
}

std::vector<std::string> LoraAdapter::targets() const {
  std::vector<std::string> out;
  out.reserve(targets_.size());
  for (const auto& [name, target] : targets_) out.push_back(name);
  return out;
}

bool LoraAdapter::changes(const std::string& base_tensor_name) const { return targets_.count(base_tensor_name) != 0; }

const LoraAdapter::Target* LoraAdapter::find_target(const std::string& base_tensor_name) const {
  const auto it = targets_.find(base_tensor_name);
  return it == targets_.end() ? nullptr : &it->second;
}

std::vector<int64_t> LoraAdapter::target_shape(const Target& target) const {
  const Module& module = modules_.at(target.module);
  const int64_t out = module.b.shape[0];  // embeddings: dim
  const int64_t in = module.a.shape[1];   // embeddings: vocab
  if (target.part == Part::kBias) return {out};
  if (module.embedding || fan_in_fan_out_) return {in, out};
  return {out, in};
}

void LoraAdapter::check_against(const SafetensorsCheckpoint& base) const {
  for (const auto& [name, target] : targets_) {
    const std::vector<int64_t> expected = target_shape(target);
    const std::optional<TensorInfo> info = base.find(name);
    PIPEPRUNE_CHECK(info.has_value(), ConfigError,
                    "adapter " << dir_.string() << " does not match base " << base.dir().string() << ": it changes "
                               << name << " " << shape_text(expected)
                               << ", which the base does not have; was the adapter trained on another model?");
    PIPEPRUNE_CHECK(info->shape == expected, ConfigError,
                    "adapter " << dir_.string() << " does not match base " << base.dir().string() << ": " << name
                               << " is " << shape_text(info->shape) << " in the base but the adapter implies "
                               << shape_text(expected) << "; was the adapter trained on another model?");
    const Module& module = modules_.at(target.module);
    if (target.part == Part::kWeight && module.base_layer) {
      PIPEPRUNE_CHECK(module.base_layer->shape == info->shape, ConfigError,
                      "adapter " << dir_.string() << " saves " << name << " as " << shape_text(module.base_layer->shape)
                                 << " but the base " << base.dir().string() << " has " << shape_text(info->shape)
                                 << " (a resized vocabulary?); folding a resized embedding is not supported");
    }
  }
}

at::Tensor LoraAdapter::fold(const std::string& base_tensor_name, const at::Tensor& base_tensor) const {
  const Target* target = find_target(base_tensor_name);
  if (target == nullptr) return base_tensor;
  const Module& module = modules_.at(target->module);
  const std::vector<int64_t> expected = target_shape(*target);
  PIPEPRUNE_CHECK(base_tensor.sizes().equals(expected), ConfigError,
                  "adapter " << dir_.string() << " does not match base tensor " << base_tensor_name << ": it is "
                             << shape_text(base_tensor.sizes()) << " but the adapter implies " << shape_text(expected));
  PIPEPRUNE_CHECK(base_tensor.is_floating_point(), ConfigError,
                  "adapter " << dir_.string() << ": base tensor " << base_tensor_name << " is not floating point");
  // PEFT's from_pretrained autocasts fp16/bf16 adapter weights to fp32, so the delta is fp32.
  const auto load_fp32 = [&](const TensorInfo& info) {
    return file_->load(info).to(base_tensor.device(), at::kFloat);
  };
  // PEFT loads a saved base layer over the model's weight before merging into it.
  const at::Tensor base_weight = target->part == Part::kWeight && module.base_layer
                                     ? file_->load(*module.base_layer).to(base_tensor.device(), base_tensor.scalar_type())
                                     : base_tensor;
  at::Tensor delta;
  if (target->part == Part::kBias) {
    delta = at::mul(load_fp32(*module.bias), module.scaling);
  } else {
    at::Tensor product = at::matmul(load_fp32(module.b), load_fp32(module.a));
    if (module.embedding || fan_in_fan_out_) product = product.t();
    // Product first, then the scale: PEFT's transpose(B @ A, fan_in_fan_out) * scaling. A
    // Python float times an fp32 tensor multiplies in fp32, as at::mul with a double Scalar does.
    delta = at::mul(product, module.scaling);
  }
  // `W += delta` promotes to fp32 and rounds once to W's dtype; at::add does the same.
  return at::add(base_weight, delta).to(base_tensor.scalar_type()).contiguous();
}

}  // namespace pipeprune
