// GPU memory readings for --log-memory and the default budget, through fake CUDA entry points:
// the runtime's free/total bytes, LibTorch's allocator statistics, and every "not available" path.
#include <gtest/gtest.h>

#include "dist/cuda_memory.h"

namespace pipeprune {
namespace {

int g_selected_device = -1;
int fake_set_device(int index) {
  g_selected_device = index;
  return 0;
}
int failing_set_device(int) { return 100; }  // cudaErrorNoDevice
int fake_mem_get_info(size_t* free_bytes, size_t* total_bytes) {
  *free_bytes = 30;
  *total_bytes = 80;
  return 0;
}
int failing_mem_get_info(size_t*, size_t*) { return 2; }  // cudaErrorMemoryAllocation

std::optional<CudaAllocatorStats> fake_allocator_stats(int device) {
  return CudaAllocatorStats{1000 + device, 2000, 5000};
}
std::optional<CudaAllocatorStats> uninitialised_allocator(int) { return std::nullopt; }

TEST(CudaMemory, AllocatorStatistics_AllocatedReservedPeakAndDriverFree) {
  CudaMemoryApi api;
  api.set_device = fake_set_device;
  api.mem_get_info = fake_mem_get_info;
  api.allocator_stats = fake_allocator_stats;
  const auto reading = cuda_memory_reading(3, api);
  ASSERT_TRUE(reading.has_value());
  EXPECT_EQ(g_selected_device, 3);
  EXPECT_EQ(reading->allocated_bytes, 1003);
  EXPECT_EQ(reading->reserved_bytes, 2000);
  EXPECT_EQ(reading->peak_bytes, 5000);
  EXPECT_EQ(reading->free_bytes, 30);
}

TEST(CudaMemory, NoAllocatorStatistics_DriverUsedBytesStandIn) {
  CudaMemoryApi api;
  api.set_device = fake_set_device;
  api.mem_get_info = fake_mem_get_info;
  const auto reading = cuda_memory_reading(0, api);
  ASSERT_TRUE(reading.has_value());
  EXPECT_EQ(reading->allocated_bytes, 50);
  EXPECT_EQ(reading->reserved_bytes, 50);
  EXPECT_EQ(reading->peak_bytes, 50);
  EXPECT_EQ(reading->free_bytes, 30);
  EXPECT_EQ(cuda_free_bytes(0, api), 30);
}

// Before the first device tensor the allocator holds nothing: zero, not the driver's used bytes
// (context, other processes), which would be the floor of every later peak.
TEST(CudaMemory, AllocatorNotInitialised_NothingAllocatedYet) {
  CudaMemoryApi api;
  api.set_device = fake_set_device;
  api.mem_get_info = fake_mem_get_info;
  api.allocator_stats = uninitialised_allocator;
  const auto reading = cuda_memory_reading(0, api);
  ASSERT_TRUE(reading.has_value());
  EXPECT_EQ(reading->allocated_bytes, 0);
  EXPECT_EQ(reading->reserved_bytes, 0);
  EXPECT_EQ(reading->peak_bytes, 0);
  EXPECT_EQ(reading->free_bytes, 30);
}

// This CPU-only build has no caching allocator: no statistics, and releasing its cache is a no-op.
TEST(CudaAllocator, CpuOnlyBuild_NoStatisticsAndReleaseIsHarmless) {
  if (built_with_cuda_libtorch()) GTEST_SKIP() << "built against a CUDA LibTorch";
  EXPECT_FALSE(cuda_allocator_stats(0).has_value());
  release_cuda_allocator_cache();
  EXPECT_EQ(loaded_cuda_memory_api().allocator_stats, nullptr);
}

TEST(CudaMemory, NoRuntimeOrFailingCalls_NoReading) {
  EXPECT_FALSE(cuda_memory_reading(0, CudaMemoryApi{}).has_value());
  EXPECT_FALSE(cuda_free_bytes(0, CudaMemoryApi{}).has_value());
  CudaMemoryApi no_device;
  no_device.set_device = failing_set_device;
  no_device.mem_get_info = fake_mem_get_info;
  no_device.allocator_stats = fake_allocator_stats;
  EXPECT_FALSE(cuda_memory_reading(0, no_device).has_value());
  EXPECT_FALSE(cuda_free_bytes(0, no_device).has_value());
  CudaMemoryApi failing;
  failing.set_device = fake_set_device;
  failing.mem_get_info = failing_mem_get_info;
  EXPECT_FALSE(cuda_memory_reading(0, failing).has_value());
  EXPECT_FALSE(cuda_free_bytes(0, failing).has_value());
}

}  // namespace
}  // namespace pipeprune
