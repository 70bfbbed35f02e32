#include "launch/test_hooks.h"

#include <cstdlib>
#include <string>

namespace pipeprune {

std::shared_ptr<FaultInjector> fault_injector_from_environment() {
  const char* oom = std::getenv("PIPEPRUNE_TEST_OOM");
  const char* fail_layer = std::getenv("PIPEPRUNE_TEST_FAIL_LAYER");
  FaultPlan plan = FaultPlan::parse(oom ? oom : "", fail_layer ? fail_layer : "",
                                    "PIPEPRUNE_TEST_OOM / PIPEPRUNE_TEST_FAIL_LAYER");
  if (const char* kill_layer = std::getenv("PIPEPRUNE_TEST_KILL_LAYER")) {
    plan.kill_layer = FaultPlan::parse("", kill_layer, "PIPEPRUNE_TEST_KILL_LAYER").fail_layer;
  }
  if (plan.empty()) return nullptr;
  return make_fault_injector(plan);
}

}  // namespace pipeprune
