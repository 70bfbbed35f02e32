#include "dist/device_fallback.h"

#include <dlfcn.h>

#include <c10/util/Exception.h>

#include "core/common/error.h"

namespace pipeprune {

bool is_out_of_memory(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const c10::OutOfMemoryError&) {
    return true;
  } catch (const OutOfMemoryError&) {
    return true;
  } catch (...) {
    return false;
  }
}

void release_device_caches() {
  // c10::cuda::CUDACachingAllocator::emptyCache(), looked up at run time so the CPU-only build
  // needs no CUDA library; present whenever a CUDA LibTorch is loaded.
  using EmptyCache = void (*)();
  if (auto* empty_cache =
          reinterpret_cast<EmptyCache>(dlsym(RTLD_DEFAULT, "_ZN3c104cuda20CUDACachingAllocator10emptyCacheEv"))) {
    empty_cache();
  }
}

}  // namespace pipeprune
