// Failures on purpose, so the paths that handle them can be tested on any machine (the shape of
// leveldb's fault-injecting Env): the stage runner asks its FaultInjector before each layer and
// each pass, and an injector may throw there. The library never reads the environment for
// this; launch/ builds an injector from PIPEPRUNE_TEST_* variables and hands it to the job.
//
// Thread-safe: an injector may be shared by every thread of a rank.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dist/layer_pass.h"

namespace pipeprune {

class FaultInjector {
 public:
  virtual ~FaultInjector() = default;
  // Before the work on `layer` starts (once per layer, not on a retry).
  virtual void before_layer(int64_t layer) = 0;
  // Before each attempt of `pass` on `layer`.
  virtual void before_pass(int64_t layer, LayerPass pass) = 0;
};

// Injects nothing (the default of every job).
FaultInjector& no_faults();

// `faults`' out-of-memory failures only (before_pass), without its layer kills and failures: for
// a walk that runs before the job's own walk over the same layers (OWL's outlier pass), so that
// a kill at layer L still lands in the walk that leaves layers before L finished. Each planned
// out-of-memory still fires once in all, in whichever walk reaches it first.
class PassFaultsOnly final : public FaultInjector {
 public:
  explicit PassFaultsOnly(FaultInjector& faults) : faults_(faults) {}
  void before_layer(int64_t) override {}
  void before_pass(int64_t layer, LayerPass pass) override { faults_.before_pass(layer, pass); }

 private:
  FaultInjector& faults_;
};

struct FaultPlan {
  // The first attempt of each (layer, pass) listed fails as a device allocation failure would
  // (OutOfMemoryError), once per process.
  std::vector<std::pair<int64_t, LayerPass>> out_of_memory;
  // The rank owning this layer throws an Error as its work on the layer starts.
  std::optional<int64_t> fail_layer;
  // The rank owning this layer kills itself with SIGKILL as its work on the layer starts, as a
  // preemption or the OOM killer would: no cleanup runs (the resume tests).
  std::optional<int64_t> kill_layer;

  // "LAYER:PASS[,LAYER:PASS...]" (PASS as layer_pass_name() spells it) and a layer number;
  // either may be empty. ConfigError naming `what` on a malformed entry.
  static FaultPlan parse(const std::string& out_of_memory, const std::string& fail_layer, const std::string& what);
  bool empty() const { return out_of_memory.empty() && !fail_layer && !kill_layer; }
};

std::unique_ptr<FaultInjector> make_fault_injector(FaultPlan plan);

}  // namespace pipeprune
