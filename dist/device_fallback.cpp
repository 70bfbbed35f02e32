#include "dist/device_fallback.h"

#include <c10/util/Exception.h>

#include "core/common/error.h"
#include "dist/cuda_allocator.h"

namespace pipeprune {

bool is_out_of_memory(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const c10::OutOfMemoryError&) {
    return true;
  } catch (const OutOfMemoryError&) {
    return true;
  } catch (const c10::Error& e) {
    // Not every device allocation goes through the caching allocator: a CUDA runtime error
    // ("CUDA error: out of memory", cudaHostAlloc) or a cuBLAS/cuSOLVER handle's workspace.
    const std::string what = e.what_without_backtrace();
    return what.find("out of memory") != std::string::npos || what.find("ALLOC_FAILED") != std::string::npos;
  } catch (...) {
    return false;
  }
}

void release_device_caches() { release_cuda_allocator_cache(); }

}  // namespace pipeprune
