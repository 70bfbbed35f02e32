// The failure-injection hooks of the test suite, read from the environment here (never inside
// the library) and handed to the jobs as a FaultInjector (dist/fault_injection.h):
//   PIPEPRUNE_TEST_OOM="LAYER:PASS[,LAYER:PASS...]"  the first attempt of that pass on that
//       layer fails as a device out-of-memory would (PASS: load, stats, mask, output, eval)
//   PIPEPRUNE_TEST_FAIL_LAYER=N  the rank owning layer N throws as its work on it starts
//   PIPEPRUNE_TEST_MERGE_OOM="TENSOR[,TENSOR...]"  merge: the first attempt of each named tensor
//       fails as a device out-of-memory would
#pragma once

#include <memory>
#include <set>
#include <string>

#include "dist/fault_injection.h"

namespace pipeprune {

// Null when neither variable is set.
std::shared_ptr<FaultInjector> fault_injector_from_environment();

// PIPEPRUNE_TEST_MERGE_OOM's tensor names; empty when unset.
std::set<std::string> merge_out_of_memory_from_environment();

}  // namespace pipeprune
