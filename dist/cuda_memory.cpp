#include "dist/cuda_memory.h"

#include <dlfcn.h>

namespace pipeprune {

CudaMemoryApi loaded_cuda_memory_api() {
  CudaMemoryApi api;
  api.set_device = reinterpret_cast<int (*)(int)>(dlsym(RTLD_DEFAULT, "cudaSetDevice"));
  api.mem_get_info = reinterpret_cast<int (*)(size_t*, size_t*)>(dlsym(RTLD_DEFAULT, "cudaMemGetInfo"));
  if (built_with_cuda_libtorch()) api.allocator_stats = cuda_allocator_stats;
  return api;
}

namespace {

struct DriverMemory {
  int64_t free_bytes;
  int64_t total_bytes;
};

// cudaSetDevice + cudaMemGetInfo; nullopt when either is missing or fails.
std::optional<DriverMemory> driver_memory(int index, const CudaMemoryApi& api) {
  if (api.set_device == nullptr || api.mem_get_info == nullptr || api.set_device(index) != 0) return std::nullopt;
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  if (api.mem_get_info(&free_bytes, &total_bytes) != 0) return std::nullopt;
  return DriverMemory{static_cast<int64_t>(free_bytes), static_cast<int64_t>(total_bytes)};
}

}  // namespace

std::optional<int64_t> cuda_free_bytes(int index, const CudaMemoryApi& api) {
  const auto driver = driver_memory(index, api);
  if (!driver) return std::nullopt;
  return driver->free_bytes;
}

std::optional<DeviceMemoryReading> cuda_memory_reading(int index, const CudaMemoryApi& api) {
  const auto driver = driver_memory(index, api);
  if (!driver) return std::nullopt;
  DeviceMemoryReading reading;
  reading.free_bytes = driver->free_bytes;
  const std::optional<CudaAllocatorStats> stats =
      api.allocator_stats != nullptr ? api.allocator_stats(index) : std::nullopt;
  if (stats) {
    reading.allocated_bytes = stats->allocated_bytes;
    reading.reserved_bytes = stats->reserved_bytes;
    reading.peak_bytes = stats->peak_allocated_bytes;
  } else if (api.allocator_stats != nullptr) {
    // A CUDA LibTorch whose allocator has not started: this process holds no tensor memory on
    // the device yet. The driver's used bytes (the context, other processes) would become the
    // floor of every later peak.
    reading.allocated_bytes = 0;
    reading.reserved_bytes = 0;
    reading.peak_bytes = 0;
  } else {
    // No allocator statistics: what the driver says is in use on the device stands in.
    const int64_t used = driver->total_bytes - driver->free_bytes;
    reading.allocated_bytes = used;
    reading.reserved_bytes = used;
    reading.peak_bytes = used;
  }
  return reading;
}

}  // namespace pipeprune
