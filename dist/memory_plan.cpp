#include "dist/memory_plan.h"

#include <unistd.h>

#include <fmt/format.h>

#include "core/common/error.h"
#include "core/memory/gpu_memory_estimate.h"
#include "core/memory/hdf5_activation_store.h"
#include "core/memory/host_memory.h"
#include "dist/abort_cleanup.h"
#include "dist/agreed_errors.h"

namespace pipeprune {
namespace {

// Owns a spilling store and keeps its file registered for abort cleanup while it lives.
class RegisteredSpillStore final : public ActivationStore {
 public:
  explicit RegisteredSpillStore(std::unique_ptr<SpillingActivationStore> store) : store_(std::move(store)) {
    register_abort_cleanup(store_->spill_path());
  }
  ~RegisteredSpillStore() override {
    const std::filesystem::path path = store_->spill_path();
    store_.reset();
    unregister_abort_cleanup(path);
  }
  int64_t size() const override { return store_->size(); }
  void put(int64_t index, const at::Tensor& activation) override { store_->put(index, activation); }
  at::Tensor get(int64_t index) const override { return store_->get(index); }
  int64_t bytes_in_memory() const override { return store_->bytes_in_memory(); }
  int64_t bytes_spilled() const override { return store_->bytes_spilled(); }

 private:
  std::unique_ptr<SpillingActivationStore> store_;
};

}  // namespace

std::string MemoryPlan::describe() const {
  std::string line = fmt::format("estimated peak {} of budget {} (baseline {}, weights {}, activations {}", format_bytes(estimate.total()),
                                 format_bytes(budget_bytes), format_bytes(estimate.baseline), format_bytes(estimate.weights),
                                 format_bytes(estimate.activations));
  if (estimate.activations_spilled > 0) line += fmt::format(" + {} spilled to disk", format_bytes(estimate.activations_spilled));
  line += fmt::format(", statistics {}, scratch {}; peak at {})", format_bytes(estimate.statistics),
                      format_bytes(estimate.scratch), estimate.peak_phase);
  if (gpu) {
    line = "device: " + line + fmt::format("; host: estimated peak {} of budget {} (process {}, weights {}, activations {}",
                                           format_bytes(host_estimate.total()), format_bytes(host_budget_bytes),
                                           format_bytes(host_estimate.baseline), format_bytes(host_estimate.weights),
                                           format_bytes(host_estimate.activations));
    if (host_estimate.activations_spilled > 0) {
      line += fmt::format(" + {} spilled to disk", format_bytes(host_estimate.activations_spilled));
    }
    line += fmt::format(", staging {}); activations on the {}", format_bytes(host_estimate.scratch),
                        activations_on_host ? "host" : "device");
  }
  return line;
}

namespace {

// A GPU rank: the device and the host each against its own budget.
MemoryPlan plan_gpu_prune_memory_of_rank(const StageContext& context, EstimateSettings settings) {
  settings.baseline_bytes = context.baseline_bytes;
  const GpuPrunePlan gpu = plan_gpu_prune_rank(context.spec, context.share(), settings, context.stage.budget_bytes,
                                               context.host_budget_bytes);
  const std::string where = fmt::format("rank {} ({}, {})", context.rank(), context.stage.host, context.stage.device);
  if (!gpu.fits && gpu.device_short) {
    PIPEPRUNE_FAIL(OutOfMemoryError,
                   fmt::format("{}: a device budget of {} cannot hold layers {}-{} even with the activations in host RAM: "
                               "it needs at least {} on the device (CUDA runtime, one layer's compute copy, statistics, "
                               "scratch, two samples in flight); raise --max-memory cuda=SIZE, lower --seqlen, or "
                               "--compute-dtype bf16",
                               where, format_bytes(context.stage.budget_bytes), context.stage.first_layer,
                               context.stage.end_layer - 1, format_bytes(gpu.least_bytes)));
  }
  if (!gpu.fits) {
    PIPEPRUNE_FAIL(OutOfMemoryError,
                   fmt::format("{}: a host budget of {} cannot hold layers {}-{} with the activations offloaded from "
                               "the device: it needs at least {} of host RAM (the process, one stored layer, one sample "
                               "per activation store, staging); raise --max-memory cpu=SIZE or lower --seqlen",
                               where, format_bytes(context.host_budget_bytes), context.stage.first_layer,
                               context.stage.end_layer - 1, format_bytes(gpu.least_bytes)));
  }
  MemoryPlan plan;
  plan.gpu = true;
  plan.budget_bytes = context.stage.budget_bytes;
  plan.host_budget_bytes = context.host_budget_bytes;
  plan.estimate = gpu.estimate.device;
  plan.host_estimate = gpu.estimate.host;
  plan.activations_on_host = gpu.estimate.placement == ActivationPlacement::kHost;
  plan.activation_ram_per_store = gpu.host_ram_per_store;
  return plan;
}

MemoryPlan plan_prune_memory_of_rank(const StageContext& context, EstimateSettings settings) {
  if (context.device.is_cuda()) return plan_gpu_prune_memory_of_rank(context, settings);
  MemoryPlan plan;
  plan.budget_bytes = context.stage.budget_bytes;
  settings.baseline_bytes = context.baseline_bytes;
  settings.activation_ram_bytes = -1;
  plan.estimate = estimate_prune_rank(context.spec, context.share(), settings);
  if (plan.estimate.total() > plan.budget_bytes) {
    const int64_t minimum = minimum_prune_budget(context.spec, context.share(), settings);
    if (minimum > plan.budget_bytes) {
      PIPEPRUNE_FAIL(OutOfMemoryError, fmt::format("rank {} ({}, {}): a memory budget of {} cannot hold layers {}-{}: it needs at least {} "
                          "(the process {}, one layer's weights, statistics and scratch, two activation samples); "
                          "raise --max-memory, use more ranks, or lower --seqlen",
                          context.rank(), context.stage.host, context.stage.device, format_bytes(plan.budget_bytes),
                          context.stage.first_layer, context.stage.end_layer - 1, format_bytes(minimum),
                          format_bytes(context.baseline_bytes)));
    } else {
      // What is left after everything but the activations is theirs; the rest spills.
      settings.activation_ram_bytes = 0;
      const int64_t without = estimate_prune_rank(context.spec, context.share(), settings).total();
      settings.activation_ram_bytes = plan.budget_bytes - without;
      plan.estimate = estimate_prune_rank(context.spec, context.share(), settings);
      const int64_t stores = prune_activation_stores(context.share(), settings, context.config.n_layers);
      plan.activation_ram_per_store = settings.activation_ram_bytes / stores;
    }
  }
  return plan;
}

}  // namespace

MemoryPlan plan_prune_memory(const StageContext& context, EstimateSettings settings) {
  MemoryPlan plan;
  run_agreed(*context.transport, [&] { plan = plan_prune_memory_of_rank(context, settings); });
  return plan;
}

MemoryPlan plan_eval_memory(const StageContext& context, int64_t n_windows, int64_t seqlen) {
  MemoryPlan plan;
  run_agreed(*context.transport, [&] { plan = plan_eval_memory_of_rank(context, n_windows, seqlen); });
  return plan;
}

MemoryPlan plan_eval_memory_of_rank(const StageContext& context, int64_t n_windows, int64_t seqlen) {
  MemoryPlan plan;
  plan.budget_bytes = context.stage.budget_bytes;
  const int64_t element = static_cast<int64_t>(c10::elementSize(context.compute_dtype));
  plan.estimate = estimate_eval_rank(context.spec, context.share(), n_windows, seqlen, element, context.baseline_bytes, true);
  if (plan.estimate.total() <= plan.budget_bytes) {
    plan.resident = true;
    return plan;
  }
  plan.estimate = estimate_eval_rank(context.spec, context.share(), n_windows, seqlen, element, context.baseline_bytes, false);
  if (plan.estimate.total() <= plan.budget_bytes) return plan;
  // Spill the hidden states beyond what is left; at least one window per store must fit.
  const int64_t sample_bytes = seqlen * context.config.hidden_size * element;
  const int64_t without = plan.estimate.total() - plan.estimate.activations;
  PIPEPRUNE_CHECK(without + 2 * sample_bytes <= plan.budget_bytes, OutOfMemoryError,
                  "rank " << context.rank() << ": a memory budget of " << format_bytes(plan.budget_bytes)
                          << " cannot evaluate even one streamed layer; it needs at least "
                          << format_bytes(without + 2 * sample_bytes) << "; raise --max-memory or lower --seqlen");
  plan.activation_ram_per_store = (plan.budget_bytes - without) / 2;
  plan.estimate.activations_spilled = plan.estimate.activations - 2 * plan.activation_ram_per_store;
  plan.estimate.activations = 2 * plan.activation_ram_per_store;
  return plan;
}

std::unique_ptr<ActivationStore> make_planned_store(const MemoryPlan& plan, int64_t n_samples,
                                                    const std::filesystem::path& spill_dir, int rank,
                                                    const std::string& name) {
  if (!plan.spills()) {
    return plan.activations_on_host ? make_host_activation_store(n_samples) : make_memory_activation_store(n_samples);
  }
  std::error_code ec;
  std::filesystem::create_directories(spill_dir, ec);
  PIPEPRUNE_CHECK(!ec, IoError, spill_dir.string() << ": cannot create the --spill-dir (" << ec.message() << ")");
  const std::string stem = fmt::format(".pipeprune-spill-{}-rank{}-{}", ::getpid(), rank, name);
  return std::make_unique<RegisteredSpillStore>(
      make_spilling_activation_store(n_samples, plan.activation_ram_per_store, spill_dir, stem));
}

}  // namespace pipeprune
