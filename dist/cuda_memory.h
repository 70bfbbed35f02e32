// GPU memory figures from the CUDA runtime and LibTorch's caching allocator.
//
// - free bytes: cudaMemGetInfo (the driver's view, all processes), a C function looked up in the
//   loaded process, so a CPU-only build (Debian's LibTorch, maybe with NCCL's libcudart) needs
//   no CUDA library to start.
// - allocated / reserved / peak: the caching allocator's own statistics, through its C++ API in
//   a build against a CUDA LibTorch (dist/cuda_allocator.h), zero before that allocator starts;
//   in a CPU-only build the driver's "used" bytes, total minus free, stand in.
#pragma once

#include <cstdint>
#include <optional>

#include "core/memory/memory_log.h"
#include "dist/cuda_allocator.h"

namespace pipeprune {

// The entry points used, so tests can substitute fakes. A null member is "not available".
struct CudaMemoryApi {
  int (*set_device)(int) = nullptr;
  int (*mem_get_info)(size_t* free_bytes, size_t* total_bytes) = nullptr;
  std::optional<CudaAllocatorStats> (*allocator_stats)(int device) = nullptr;
};

// The runtime's symbols in the loaded process (null without a CUDA runtime) and, in a CUDA
// LibTorch build, the caching allocator's statistics.
CudaMemoryApi loaded_cuda_memory_api();

// Free bytes of GPU `index`; nullopt when no CUDA runtime is loaded or the call fails.
std::optional<int64_t> cuda_free_bytes(int index, const CudaMemoryApi& api = loaded_cuda_memory_api());

// One reading for the memory log; nullopt when no CUDA runtime is loaded or the call fails.
std::optional<DeviceMemoryReading> cuda_memory_reading(int index,
                                                       const CudaMemoryApi& api = loaded_cuda_memory_api());

}  // namespace pipeprune
