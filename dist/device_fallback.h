// Recognising a device out-of-memory failure and giving the device's cached memory back, for
// the stage runner's retry-on-CPU policy (dist/stage_runner.h).
#pragma once

#include <exception>

namespace pipeprune {

// Whether the exception is a device (or injected) out-of-memory failure worth a CPU retry:
// c10::OutOfMemoryError from LibTorch's allocator, or pipeprune's OutOfMemoryError.
bool is_out_of_memory(const std::exception_ptr& error);
// Returns cached device memory to the driver (a no-op without a CUDA LibTorch).
void release_device_caches();

}  // namespace pipeprune
