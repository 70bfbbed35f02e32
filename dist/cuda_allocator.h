// LibTorch's CUDA caching allocator, through its real API when this build is linked against a
// CUDA LibTorch (PIPEPRUNE_CUDA_LIBTORCH, set by CMake when TorchConfig found libc10_cuda);
// in a CPU-only build there is no such allocator and these say so.
#pragma once

#include <cstdint>
#include <optional>

namespace pipeprune {

struct CudaAllocatorStats {
  int64_t allocated_bytes = 0;  // held by live tensors
  int64_t reserved_bytes = 0;   // held by the allocator (allocated + cached)
  int64_t peak_allocated_bytes = 0;
};

// True when this binary was built against a CUDA LibTorch.
bool built_with_cuda_libtorch();

// The allocator's figures for GPU `device`; nullopt in a CPU-only build or before CUDA is
// initialised (no allocator yet).
std::optional<CudaAllocatorStats> cuda_allocator_stats(int device);

// Returns the allocator's cached, unused blocks to the driver (after an out-of-memory, before the
// layer is run again on the CPU); nothing in a CPU-only build.
void release_cuda_allocator_cache();

}  // namespace pipeprune
