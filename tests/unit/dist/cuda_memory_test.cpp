// GPU memory readings for --log-memory and the default budget, through fake CUDA entry points:
// the runtime's free/total bytes, LibTorch's allocator statistics written at the offsets its
// DeviceStats struct puts them, and every "not available" path.
#include <gtest/gtest.h>

#include <cstring>

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

// LibTorch's DeviceStats: eight StatArrays, each three Stats (aggregate, small pool, large pool)
// of four int64 {current, peak, allocated, freed}; allocated_bytes is the fifth array and
// reserved_bytes the sixth. The whole buffer is written, as a larger struct would be.
void fake_device_stats(int device, void* out) {
  std::memset(out, 0x7f, kDeviceStatsBufferBytes);
  auto put = [out](size_t array, size_t field, int64_t value) {
    std::memcpy(static_cast<char*>(out) + array * 3 * 32 + field * 8, &value, sizeof(value));
  };
  put(4, 0, 1000 + device);  // allocated_bytes[AGGREGATE].current
  put(4, 1, 5000);           // allocated_bytes[AGGREGATE].peak
  put(5, 0, 2000);           // reserved_bytes[AGGREGATE].current
}

TEST(CudaMemory, AllocatorStatistics_AllocatedReservedPeakAndDriverFree) {
  CudaMemoryApi api;
  api.set_device = fake_set_device;
  api.mem_get_info = fake_mem_get_info;
  api.device_stats = fake_device_stats;
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

TEST(CudaMemory, NoRuntimeOrFailingCalls_NoReading) {
  EXPECT_FALSE(cuda_memory_reading(0, CudaMemoryApi{}).has_value());
  EXPECT_FALSE(cuda_free_bytes(0, CudaMemoryApi{}).has_value());
  CudaMemoryApi no_device;
  no_device.set_device = failing_set_device;
  no_device.mem_get_info = fake_mem_get_info;
  no_device.device_stats = fake_device_stats;
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
