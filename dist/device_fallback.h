// Out-of-memory on the compute device: detect it, free the device caches, and let the caller
// retry the layer on the CPU (the next layer tries the device again).
//
// Test hook: PIPEPRUNE_TEST_OOM="LAYER:OPERATION[,LAYER:OPERATION...]" (OPERATION one of stats,
// mask, output, eval) makes the first attempt of that operation on that layer fail as a device
// allocation failure would, so the fallback path runs on machines without a GPU. Each listed
// injection fires once per process.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <exception>

namespace pipeprune {

// Throws an out-of-memory error if the test hook asks for one at (layer, operation).
void maybe_inject_oom(int64_t layer, const char* operation);
// Whether the exception is a device (or injected) out-of-memory failure worth a CPU retry.
bool is_out_of_memory(const std::exception_ptr& error);
// Returns cached device memory to the driver (a no-op without a CUDA LibTorch).
void release_device_caches();

}  // namespace pipeprune
