#include "dist/fault_injection.h"

#include <csignal>

#include <mutex>
#include <set>
#include <sstream>

#include "core/common/error.h"

namespace pipeprune {
namespace {

class NoFaults final : public FaultInjector {
 public:
  void before_layer(int64_t) override {}
  void before_pass(int64_t, LayerPass) override {}
};

class PlannedFaults final : public FaultInjector {
 public:
  explicit PlannedFaults(FaultPlan plan) : plan_(std::move(plan)) {}

  void before_layer(int64_t layer) override {
    if (plan_.kill_layer == layer) ::raise(SIGKILL);
    PIPEPRUNE_CHECK(plan_.fail_layer != layer, Error, "injected failure: failing in layer " << layer);
  }

  void before_pass(int64_t layer, LayerPass pass) override {
    for (const auto& [wanted_layer, wanted_pass] : plan_.out_of_memory) {
      if (wanted_layer != layer || wanted_pass != pass) continue;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!fired_.insert({layer, static_cast<int>(pass)}).second) return;
      }
      PIPEPRUNE_FAIL(OutOfMemoryError, "injected out-of-memory in layer " << layer << ", "
                                                                                             << layer_pass_name(pass));
    }
  }

 private:
  FaultPlan plan_;
  std::mutex mutex_;
  std::set<std::pair<int64_t, int>> fired_;
};

// A decimal layer number, or nullopt.
std::optional<int64_t> parse_layer(const std::string& text) {
  if (text.empty() || text.size() > 9) return std::nullopt;
  int64_t value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

}  // namespace

FaultInjector& no_faults() {
  static NoFaults none;
  return none;
}

FaultPlan FaultPlan::parse(const std::string& out_of_memory, const std::string& fail_layer, const std::string& what) {
  FaultPlan plan;
  std::stringstream entries(out_of_memory);
  std::string entry;
  while (std::getline(entries, entry, ',')) {
    const size_t colon = entry.find(':');
    const std::optional<int64_t> layer = parse_layer(entry.substr(0, colon));
    const std::optional<LayerPass> pass =
        colon == std::string::npos ? std::nullopt : parse_layer_pass(entry.substr(colon + 1));
    PIPEPRUNE_CHECK(layer && pass, ConfigError,
                    what << ": out-of-memory entry '" << entry << "' is not LAYER:PASS (PASS one of load, stats, mask, output, eval)");
    plan.out_of_memory.push_back({*layer, *pass});
  }
  if (!fail_layer.empty()) {
    plan.fail_layer = parse_layer(fail_layer);
    PIPEPRUNE_CHECK(plan.fail_layer.has_value(), ConfigError, what << ": failing layer '" << fail_layer << "' is not a layer number");
  }
  return plan;
}

std::unique_ptr<FaultInjector> make_fault_injector(FaultPlan plan) {
  return std::make_unique<PlannedFaults>(std::move(plan));
}

}  // namespace pipeprune
