#include "dist/cuda_allocator.h"

#ifdef PIPEPRUNE_CUDA_LIBTORCH
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace pipeprune {

#ifdef PIPEPRUNE_CUDA_LIBTORCH

bool built_with_cuda_libtorch() { return true; }

std::optional<CudaAllocatorStats> cuda_allocator_stats(int device) {
  namespace allocator = c10::cuda::CUDACachingAllocator;
  // get() is null until LibTorch initialises CUDA (the first device tensor); asking it then
  // would initialise CUDA just for a log line.
  if (allocator::get() == nullptr || !allocator::get()->initialized()) return std::nullopt;
  if (device < 0 || device >= static_cast<int>(c10::cuda::device_count())) return std::nullopt;
  const auto stats = allocator::getDeviceStats(static_cast<c10::DeviceIndex>(device));
  // Index 0 of each StatArray is the aggregate over the small and large pools.
  CudaAllocatorStats out;
  out.allocated_bytes = stats.allocated_bytes[0].current;
  out.reserved_bytes = stats.reserved_bytes[0].current;
  out.peak_allocated_bytes = stats.allocated_bytes[0].peak;
  return out;
}

void release_cuda_allocator_cache() {
  namespace allocator = c10::cuda::CUDACachingAllocator;
  if (allocator::get() != nullptr && allocator::get()->initialized()) allocator::emptyCache();
}

#else

bool built_with_cuda_libtorch() { return false; }

std::optional<CudaAllocatorStats> cuda_allocator_stats(int) { return std::nullopt; }

void release_cuda_allocator_cache() {}

#endif

}  // namespace pipeprune
