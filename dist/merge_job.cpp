#include "dist/merge_job.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/accumulate.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "core/common/error.h"
#include "core/common/files.h"
#include "core/common/log.h"
#include "core/common/progress.h"
#include "core/common/shape_text.h"
#include "core/io/checkpoint_writer.h"
#include "core/io/safetensors.h"
#include "core/memory/host_memory.h"
#include "core/merge/lora_adapter.h"
#include "core/merge/merge_memory.h"
#include "core/merge/merge_tensor.h"
#include "dist/abort_cleanup.h"
#include "dist/agreed_errors.h"
#include "dist/device_fallback.h"

namespace pipeprune {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int64_t kDefaultShardBytes = 5'000'000'000;  // mergekit's and transformers' 5 GB shards
const char* kEmbedName = "model.embed_tokens.weight";
const char* kHeadName = "lm_head.weight";

bool is_embedding(const std::string& name) { return name == kEmbedName || name == kHeadName; }

// One input of the merge: a checkpoint, maybe with an adapter folded in on the fly.
struct OpenInput {
  std::string label;  // as the user named it, for messages
  SafetensorsCheckpoint checkpoint;
  std::unique_ptr<LoraAdapter> adapter;
  ModelParams params;
};

// Where each output tensor comes from: the output shape and, per model, the stored name it is
// read from (a tied model's embedding stands in for its missing lm_head) or empty (skipped).
struct TensorSource {
  std::string name;
  std::vector<int64_t> shape;  // the output's
  DType dtype = DType::kF32;   // the output's
  std::vector<std::string> model_names;
  std::vector<std::string> skipped;  // labels of models skipped for this tensor (shape mismatch)

  int64_t numel() const { return c10::multiply_integers(shape); }
  int64_t output_bytes() const { return numel() * element_size(dtype); }
};

json read_config(const fs::path& model) {
  const fs::path path = model / "config.json";
  PIPEPRUNE_CHECK(fs::exists(path), ConfigError, model.string() << ": no config.json (a Hugging Face model folder?)");
  try {
    return json::parse(read_file(path));
  } catch (const json::exception& e) {
    PIPEPRUNE_FAIL(FormatError, path.string() << ": not valid JSON (" << e.what() << ")");
  }
}

// Same family and the same layer geometry; the vocabulary may differ (embeddings are handled
// tensor by tensor, as mergekit does).
void check_same_architecture(const fs::path& donor, const fs::path& model) {
  const json a = read_config(donor);
  const json b = read_config(model);
  for (const char* key : {"model_type", "hidden_size", "num_hidden_layers", "num_attention_heads",
                          "num_key_value_heads", "intermediate_size"}) {
    const json va = a.contains(key) ? a[key] : json();
    const json vb = b.contains(key) ? b[key] : json();
    PIPEPRUNE_CHECK(va == vb, ConfigError,
                    "merge: " << model.string() << " is not the architecture of " << donor.string() << " (config.json "
                              << key << ": " << vb.dump() << " vs " << va.dump()
                              << "); merge models fine-tuned from one base");
  }
}

std::vector<OpenInput> open_models(const MergeJobOptions& options, const fs::path& donor) {
  std::vector<OpenInput> inputs;
  for (const MergeModelInput& m : options.models) {
    OpenInput input{m.model.string(), SafetensorsCheckpoint::open(m.model), nullptr, m.params};
    if (!m.adapter.empty()) {
      input.label += "+" + m.adapter.string();
      input.adapter = std::make_unique<LoraAdapter>(LoraAdapter::open(m.adapter));
      input.adapter->check_against(input.checkpoint);
    }
    if (m.model != donor) check_same_architecture(donor, m.model);
    inputs.push_back(std::move(input));
  }
  return inputs;
}

// The stored name a model's tensor `name` is read from, or nullopt when the model lacks it.
std::optional<std::string> source_name(const SafetensorsCheckpoint& checkpoint, const std::string& name) {
  if (checkpoint.has(name)) return name;
  // A model with tied embeddings has no lm_head: its embedding is its head (mergekit's
  // tied_names for llama).
  if (name == kHeadName && checkpoint.has(kEmbedName)) return std::string(kEmbedName);
  return std::nullopt;
}

// Every output tensor's sources and shape, checked before any data is read.
std::vector<TensorSource> plan_sources(const SafetensorsCheckpoint& donor, const SafetensorsCheckpoint* base,
                                       const std::vector<OpenInput>& models, const MergeJobOptions& options) {
  const bool linear = options.settings.method == MergeMethod::kLinear && !options.lora_only;
  std::vector<TensorSource> sources;
  for (const std::string& name : donor.names()) {
    const TensorInfo& info = donor.info(name);
    TensorSource source{name, info.shape, options.out_dtype.value_or(info.dtype), {}, {}};
    if (base != nullptr) {
      PIPEPRUNE_CHECK(base->has(name), ConfigError, "merge: the base " << base->dir().string() << " has no " << name);
    }
    for (const OpenInput& m : models) {
      const std::optional<std::string> stored = source_name(m.checkpoint, name);
      PIPEPRUNE_CHECK(stored.has_value(), ConfigError,
                      "merge: " << m.label << " has no tensor " << name << " (the donor " << donor.dir().string()
                                << " has it); merge models of one architecture");
      const std::vector<int64_t>& shape = m.checkpoint.info(*stored).shape;
      if (shape == info.shape) {
        source.model_names.push_back(*stored);
        continue;
      }
      const bool comparable = shape.size() == 2 && info.shape.size() == 2 && is_embedding(name);
      if (linear) {
        // mergekit: embeddings of different vocabularies merge over their common rows.
        PIPEPRUNE_CHECK(comparable, ConfigError,
                        "merge: " << name << " is " << shape_text(shape) << " in " << m.label << " but "
                                  << shape_text(info.shape) << " in " << donor.dir().string()
                                  << "; linear merges need equal shapes (embeddings aside)");
        for (size_t d = 0; d < 2; ++d) source.shape[d] = std::min(source.shape[d], shape[d]);
        source.model_names.push_back(*stored);
      } else if (comparable) {
        // mergekit reads x[:rows_b, :cols_b]: a larger vocabulary is cut to the base's.
        PIPEPRUNE_CHECK(shape[0] >= info.shape[0] && shape[1] >= info.shape[1], ConfigError,
                        "merge: " << name << " of " << m.label << " is " << shape_text(shape)
                                  << ", smaller than the base's " << shape_text(info.shape)
                                  << "; a model with a smaller vocabulary cannot be merged onto this base");
        source.model_names.push_back(*stored);
      } else {
        // mergekit skips a model whose tensor does not match the base's (no task vector).
        source.model_names.emplace_back();
        source.skipped.push_back(m.label);
      }
    }
    if (!source.skipped.empty()) {
      log::warn("merge: {} skipped for {} (shape differs from the base's {})", fmt::join(source.skipped, ", "), name,
                shape_text(info.shape));
    }
    sources.push_back(std::move(source));
  }
  for (const OpenInput& m : models) {
    int64_t extra = 0;
    for (const std::string& name : m.checkpoint.names()) extra += donor.has(name) ? 0 : 1;
    if (extra > 0) log::warn("merge: {} has {} tensor(s) the donor lacks; they are not in the output", m.label, extra);
  }
  return sources;
}

at::Tensor load_input(const SafetensorsCheckpoint& checkpoint, const std::string& stored, const std::string& name,
                      const LoraAdapter* adapter, const std::vector<int64_t>& shape, c10::Device device) {
  at::Tensor t = checkpoint.load(stored);
  // The adapter changes the tensor under its own name (the head, not the embedding it ties to).
  if (adapter != nullptr && adapter->changes(name)) t = adapter->fold(name, t);
  if (t.sizes().vec() != shape && t.dim() == 2) t = t.slice(0, 0, shape[0]).slice(1, 0, shape[1]);
  return t.to(device, at::kFloat);
}

struct MergedTensor {
  at::Tensor value;  // on the CPU, in the output dtype
  TensorMergeStats stats;
};

MergedTensor merge_one(const TensorSource& source, const SafetensorsCheckpoint* base,
                       const std::vector<OpenInput>& models, const MergeJobOptions& options, c10::Device device) {
  MergedTensor out;
  at::Tensor value;
  if (options.lora_only) {
    const OpenInput& m = models.front();
    value = m.adapter->fold(source.name, m.checkpoint.load(source.model_names.front()));
    out.value = value.to(at::kCPU, to_scalar_type(source.dtype)).contiguous();
    return out;
  }
  at::Tensor base_tensor;
  if (base != nullptr) base_tensor = load_input(*base, source.name, source.name, nullptr, source.shape, device);
  std::vector<at::Tensor> inputs;
  std::vector<ModelParams> params;
  for (size_t i = 0; i < models.size(); ++i) {
    if (source.model_names[i].empty()) continue;
    inputs.push_back(load_input(models[i].checkpoint, source.model_names[i], source.name, models[i].adapter.get(),
                                source.shape, device));
    params.push_back(models[i].params);
  }
  if (inputs.empty()) {
    value = base_tensor;  // no task vector left: the base (mergekit)
  } else {
    value = merge_tensor(base_tensor, inputs, params, options.settings, source.name, &out.stats);
  }
  out.value = value.to(at::kCPU, to_scalar_type(source.dtype)).contiguous();
  return out;
}

// Greedy by bytes, largest first: each rank gets about the same amount to read and write.
std::vector<int> assign_ranks(const std::vector<TensorSource>& sources, int world) {
  std::vector<size_t> order(sources.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto bytes = [&](size_t i) { return sources[i].output_bytes(); };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return bytes(a) > bytes(b); });
  std::vector<int64_t> load(static_cast<size_t>(world), 0);
  std::vector<int> owner(sources.size(), 0);
  for (size_t i : order) {
    const auto rank = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    owner[i] = static_cast<int>(rank);
    load[rank] += bytes(i);
  }
  return owner;
}

// The largest tensor sets the peak (core/merge/merge_memory.h).
int64_t estimate_peak(const SafetensorsCheckpoint& donor, const std::vector<TensorSource>& sources, size_t inputs) {
  int64_t largest = 0;
  int64_t stored = 0;
  int64_t written = 0;
  for (const TensorSource& s : sources) {
    const int64_t n = s.numel();
    if (n <= largest) continue;
    largest = n;
    stored = donor.info(s.name).n_bytes;
    written = s.output_bytes();
  }
  return estimate_merge_rank(process_rss_bytes(), largest, stored, written, static_cast<int64_t>(inputs)).total();
}

json stats_json(const TensorSource& source, const TensorMergeStats& stats, bool cpu_retry) {
  json t = {{"name", source.name}, {"shape", source.shape}, {"kept_fraction", stats.kept_fraction}};
  if (stats.sign_agreement) t["sign_agreement"] = *stats.sign_agreement;
  if (!stats.rescale_factors.empty()) t["rescale_factors"] = stats.rescale_factors;
  if (!source.skipped.empty()) t["skipped_models"] = source.skipped;
  if (cpu_retry) t["cpu_retry"] = true;
  return t;
}

}  // namespace

MergeJobResult run_merge_job(Transport& transport, const MergeJobOptions& options) {
  c10::InferenceMode inference_guard;
  const auto start = std::chrono::steady_clock::now();
  const bool linear = options.settings.method == MergeMethod::kLinear && !options.lora_only;
  PIPEPRUNE_CHECK(!options.models.empty(), ConfigError, "merge: give the models to merge with --models A,B,...");
  if (options.lora_only) {
    PIPEPRUNE_CHECK(options.models.size() == 1 && !options.models[0].adapter.empty(), ConfigError,
                    "--method lora folds one adapter: give --lora ADAPTER and --lora-base DIR (or --base DIR)");
  } else {
    PIPEPRUNE_CHECK(linear || !options.base.empty(), ConfigError,
                    "--method " << merge_method_name(options.settings.method)
                                << " merges task vectors against a base: give --base DIR");
    std::vector<ModelParams> params;
    for (const MergeModelInput& m : options.models) params.push_back(m.params);
    validate_merge(options.settings, params);
  }
  PIPEPRUNE_CHECK(!options.output.empty(), ConfigError, "merge: give --output DIR");

  // The donor of config.json, the tokenizer and the tensor list: the base, else the first model.
  const fs::path donor_dir = options.base.empty() ? options.models.front().model : options.base;
  const SafetensorsCheckpoint donor = SafetensorsCheckpoint::open(donor_dir);
  std::unique_ptr<SafetensorsCheckpoint> base;
  if (!options.base.empty() && !options.lora_only && uses_base(options.settings.method)) {
    base = std::make_unique<SafetensorsCheckpoint>(SafetensorsCheckpoint::open(options.base));
  }
  const std::vector<OpenInput> models = open_models(options, donor_dir);
  const std::vector<TensorSource> sources = plan_sources(donor, base.get(), models, options);

  MergeJobResult result;
  result.estimated_peak_bytes = estimate_peak(donor, sources, models.size() + (base ? 1 : 0));
  if (options.budget_bytes) {
    PIPEPRUNE_CHECK(result.estimated_peak_bytes <= *options.budget_bytes, OutOfMemoryError,
                    "merge: rank " << transport.rank() << " needs about " << format_bytes(result.estimated_peak_bytes)
                                   << " (the process and, for the largest tensor, " << models.size() + (base ? 1 : 0)
                                   << " inputs with fp32 copies and temporaries) but --max-memory gives "
                                   << format_bytes(*options.budget_bytes) << "; raise --max-memory");
  }

  std::vector<TensorSpec> specs;
  for (const TensorSource& s : sources) specs.push_back(TensorSpec{s.name, s.dtype, s.shape});
  ShardLayout layout = plan_layout_by_size(specs, options.max_shard_bytes.value_or(kDefaultShardBytes));
  std::unique_ptr<CheckpointWriter> writer;
  run_on_root(transport, 0, [&] {
    writer = std::make_unique<CheckpointWriter>(CheckpointWriter::create(options.output, options.overwrite, layout));
  });
  if (!writer) writer = std::make_unique<CheckpointWriter>(CheckpointWriter::join(options.output, layout));
  const fs::path staging = writer->staging_path();
  register_abort_cleanup(staging);

  const std::vector<int> owner = assign_ranks(sources, transport.size());
  int64_t my_bytes = 0;
  for (size_t i = 0; i < sources.size(); ++i) {
    if (owner[i] == transport.rank()) my_bytes += sources[i].output_bytes();
  }
  json tensor_stats = json::array();
  run_agreed(transport, [&] {
    Progress progress("merge", std::max<int64_t>(1, my_bytes >> 20));
    int64_t done = 0;
    for (size_t i = 0; i < sources.size(); ++i) {
      if (owner[i] != transport.rank()) continue;
      const TensorSource& source = sources[i];
      MergedTensor merged;
      bool cpu_retry = false;
      try {
        if (options.inject_out_of_memory.count(source.name) != 0) {
          PIPEPRUNE_FAIL(OutOfMemoryError, "injected out-of-memory merging " << source.name);
        }
        merged = merge_one(source, base.get(), models, options, options.device);
      } catch (...) {
        if (!is_out_of_memory(std::current_exception())) throw;
        cpu_retry = true;
      }
      if (cpu_retry) {
        release_device_caches();
        log::warn("merge: {} ran out of memory on {}; merging it on the CPU", source.name, options.device.str());
        merged = merge_one(source, base.get(), models, options, c10::Device(c10::kCPU));
        ++result.cpu_retries;
      }
      writer->write(source.name, merged.value);
      tensor_stats.push_back(stats_json(source, merged.stats, cpu_retry));
      done += merged.value.nbytes();
      progress.update(done >> 20, source.name);
    }
    writer->sync();
  });

  // Every rank's written names and statistics to the first rank, which adds the side files and
  // commits.
  std::vector<std::string> by_others;
  json all_stats = json::array();
  std::string mine;
  for (const std::string& name : writer->written()) mine += name + "\n";
  const std::vector<std::string> names = transport.all_gather_string(mine);
  const std::vector<std::string> stats = transport.all_gather_string(tensor_stats.dump());
  for (int r = 0; r < transport.size(); ++r) {
    std::stringstream lines(names[static_cast<size_t>(r)]);
    for (std::string name; std::getline(lines, name);) {
      if (r != transport.rank()) by_others.push_back(name);
    }
    for (const json& t : json::parse(stats[static_cast<size_t>(r)])) all_stats.push_back(t);
  }
  run_on_root(transport, 0, [&] {
    json config = read_config(donor_dir);
    if (options.out_dtype) {
      // The dtype the weights are stored in, as transformers reads it (5.x: "dtype"; 4.x: "torch_dtype").
      config[config.contains("dtype") ? "dtype" : "torch_dtype"] = torch_dtype_name(*options.out_dtype);
    }
    writer->add_file("config.json", config.dump(2) + "\n");
    writer->copy_side_files(donor_dir);
    writer->commit(by_others);
    log::info("saved the merged model to {}", options.output.string());
  });
  unregister_abort_cleanup(staging);

  result.tensors = static_cast<int64_t>(sources.size());
  for (const TensorSource& s : sources) result.bytes_written += s.output_bytes();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!options.report.empty()) {
    run_on_root(transport, 0, [&] {
      json report = {{"command", "merge"},
                     {"method", options.lora_only ? "lora" : merge_method_name(options.settings.method)},
                     {"normalize", options.settings.normalize},
                     {"lambda", options.settings.lambda},
                     {"seed", options.settings.seed},
                     {"base", options.base.string()},
                     {"output", options.output.string()},
                     {"world_size", transport.size()},
                     {"seconds", result.seconds},
                     {"estimated_peak_bytes", result.estimated_peak_bytes},
                     {"peak_rss_bytes", process_peak_rss_bytes()},
                     {"tensors", all_stats}};
      json models_json = json::array();
      for (const MergeModelInput& m : options.models) {
        models_json.push_back({{"model", m.model.string()},
                               {"adapter", m.adapter.string()},
                               {"weight", m.params.weight},
                               {"density", m.params.density}});
      }
      report["models"] = models_json;
      write_file_atomic(options.report, report.dump(2) + "\n");
    });
  }
  return result;
}

}  // namespace pipeprune
