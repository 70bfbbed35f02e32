// Which failures the stage runner treats as the device running out of memory (and so redoes the
// layer on the CPU): the caching allocator's, pipeprune's own, and CUDA/cuBLAS allocation
// failures that LibTorch reports as a plain c10::Error; nothing else.
#include "dist/device_fallback.h"

#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <stdexcept>

#include "core/common/error.h"

namespace pipeprune {
namespace {

template <typename E>
std::exception_ptr c10_error(const std::string& message) {
  try {
    throw E(c10::SourceLocation{__func__, __FILE__, static_cast<uint32_t>(__LINE__)}, message);
  } catch (...) {
    return std::current_exception();
  }
}

TEST(DeviceFallback, OutOfMemoryKinds) {
  EXPECT_TRUE(is_out_of_memory(c10_error<c10::OutOfMemoryError>("CUDA out of memory. Tried to allocate 2.00 GiB")));
  EXPECT_TRUE(is_out_of_memory(std::make_exception_ptr(OutOfMemoryError("rank 0: budget too small"))));
  EXPECT_TRUE(is_out_of_memory(c10_error<c10::Error>("CUDA error: out of memory\nCUDA kernel errors might be ...")));
  EXPECT_TRUE(is_out_of_memory(c10_error<c10::Error>("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate")));
}

TEST(DeviceFallback, OtherFailuresAreNotRetried) {
  EXPECT_FALSE(is_out_of_memory(c10_error<c10::Error>("Expected all tensors to be on the same device")));
  EXPECT_FALSE(is_out_of_memory(c10_error<c10::Error>("CUDA error: an illegal memory access was encountered")));
  EXPECT_FALSE(is_out_of_memory(std::make_exception_ptr(ConfigError("--sparsity must be in [0, 1)"))));
  EXPECT_FALSE(is_out_of_memory(std::make_exception_ptr(std::runtime_error("out of memory"))));
}

}  // namespace
}  // namespace pipeprune
