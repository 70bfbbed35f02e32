#include "dist/device_fallback.h"

#include <dlfcn.h>

#include <c10/util/Exception.h>

#include <cstdlib>
#include <mutex>
#include <set>
#include <sstream>
#include <string>

#include "core/common/error.h"

namespace pipeprune {
namespace {

std::mutex g_mutex;
std::set<std::string> g_fired;

}  // namespace

void maybe_inject_oom(int64_t layer, const char* operation) {
  const char* spec = std::getenv("PIPEPRUNE_TEST_OOM");
  if (spec == nullptr) return;
  const std::string wanted = std::to_string(layer) + ":" + operation;
  std::stringstream entries(spec);
  std::string entry;
  while (std::getline(entries, entry, ',')) {
    if (entry != wanted) continue;
    std::lock_guard<std::mutex> lock(g_mutex);
    if (!g_fired.insert(entry).second) return;
    PIPEPRUNE_FAIL(OutOfMemoryError, "injected out-of-memory (PIPEPRUNE_TEST_OOM) in layer " << layer << ", " << operation);
  }
}

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
