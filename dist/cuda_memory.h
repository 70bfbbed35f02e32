// GPU memory figures from the CUDA runtime and LibTorch's caching allocator, looked up at run
// time: this build links no CUDA library (Debian's LibTorch is CPU-only), and with a CUDA
// LibTorch the same binary code finds the symbols that library has loaded.
//
// - free bytes: cudaMemGetInfo (the driver's view, all processes).
// - allocated / reserved / peak: c10::cuda::CUDACachingAllocator::getDeviceStats (LibTorch 1.x
//   exports it as a function; where it is missing or not exported, e.g. LibTorch 2.x where it
//   became inline, the driver's "used" bytes, total minus free, stand in for all three).
#pragma once

#include <cstdint>
#include <optional>

#include "core/memory/memory_log.h"

namespace pipeprune {

// The entry points used, so tests can substitute fakes. A null member is "not available".
struct CudaMemoryApi {
  int (*set_device)(int) = nullptr;
  int (*mem_get_info)(size_t* free_bytes, size_t* total_bytes) = nullptr;
  // Writes LibTorch's DeviceStats for `device` into `out` (at least kDeviceStatsBufferBytes).
  void (*device_stats)(int device, void* out) = nullptr;
};

// Room given to LibTorch's DeviceStats (a few hundred bytes in every version): the callee
// writes its own struct, whatever its size, into a buffer at least this large.
inline constexpr size_t kDeviceStatsBufferBytes = 4096;

// The symbols of the loaded process (all null without a CUDA runtime and LibTorch).
CudaMemoryApi loaded_cuda_memory_api();

// Free bytes of GPU `index`; nullopt when no CUDA runtime is loaded or the call fails.
std::optional<int64_t> cuda_free_bytes(int index, const CudaMemoryApi& api = loaded_cuda_memory_api());

// One reading for the memory log; nullopt when no CUDA runtime is loaded or the call fails.
std::optional<DeviceMemoryReading> cuda_memory_reading(int index,
                                                       const CudaMemoryApi& api = loaded_cuda_memory_api());

}  // namespace pipeprune
