#include "launch/test_hooks.h"

#include <algorithm>
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

std::set<std::string> merge_out_of_memory_from_environment() {
  std::set<std::string> names;
  const char* value = std::getenv("PIPEPRUNE_TEST_MERGE_OOM");
  if (value == nullptr) return names;
  const std::string text = value;
  size_t begin = 0;
  while (begin <= text.size()) {
    const size_t end = std::min(text.find(',', begin), text.size());
    if (end > begin) names.insert(text.substr(begin, end - begin));
    begin = end + 1;
  }
  return names;
}

}  // namespace pipeprune
