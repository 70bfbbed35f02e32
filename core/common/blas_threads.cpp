#include "core/common/blas_threads.h"

#include <dlfcn.h>

namespace pipeprune {
namespace {

// Looked up at run time: the BLAS is whatever LibTorch was linked against.
template <typename F>
F openblas_symbol(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
}

}  // namespace

void set_blas_threads(int threads) {
  if (auto* set = openblas_symbol<void (*)(int)>("openblas_set_num_threads")) set(threads);
}

int blas_threads() {
  auto* get = openblas_symbol<int (*)()>("openblas_get_num_threads");
  return get != nullptr ? get() : 0;
}

BlasThreadsGuard::BlasThreadsGuard(int threads) : previous_(blas_threads()) {
  if (previous_ > 0 && previous_ != threads) set_blas_threads(threads);
}

BlasThreadsGuard::~BlasThreadsGuard() {
  if (previous_ > 0 && blas_threads() != previous_) set_blas_threads(previous_);
}

}  // namespace pipeprune
