#include "dist/cuda_memory.h"

#include <dlfcn.h>

#include <array>
#include <cstring>

namespace pipeprune {
namespace {

// The leading members of LibTorch's CUDACachingAllocator::DeviceStats, unchanged from 1.10
// through 2.x: StatArrays of {current, peak, allocated, freed}, indexed by StatType (0 is the
// aggregate over the small and large pools).
struct StatMirror {
  int64_t current;
  int64_t peak;
  int64_t allocated;
  int64_t freed;
};
using StatArrayMirror = std::array<StatMirror, 3>;
struct DeviceStatsPrefix {
  StatArrayMirror allocation;
  StatArrayMirror segment;
  StatArrayMirror active;
  StatArrayMirror inactive_split;
  StatArrayMirror allocated_bytes;
  StatArrayMirror reserved_bytes;
};
static_assert(sizeof(DeviceStatsPrefix) < kDeviceStatsBufferBytes);

// Returned by value like DeviceStats, so through a caller-provided buffer (the x86-64 and
// AArch64 ABIs return any struct this large through a hidden pointer): LibTorch writes its
// struct, of whatever size, into the start of this larger one.
struct DeviceStatsBuffer {
  alignas(16) unsigned char bytes[kDeviceStatsBufferBytes];
};
using GetDeviceStats = DeviceStatsBuffer (*)(int);

// c10::cuda::CUDACachingAllocator::getDeviceStats(int)
constexpr const char* kGetDeviceStatsSymbol = "_ZN3c104cuda20CUDACachingAllocator14getDeviceStatsEi";

GetDeviceStats loaded_get_device_stats() {
  static const auto function = reinterpret_cast<GetDeviceStats>(dlsym(RTLD_DEFAULT, kGetDeviceStatsSymbol));
  return function;
}

void call_loaded_device_stats(int device, void* out) {
  const DeviceStatsBuffer stats = loaded_get_device_stats()(device);
  std::memcpy(out, stats.bytes, sizeof(stats.bytes));
}

}  // namespace

CudaMemoryApi loaded_cuda_memory_api() {
  CudaMemoryApi api;
  api.set_device = reinterpret_cast<int (*)(int)>(dlsym(RTLD_DEFAULT, "cudaSetDevice"));
  api.mem_get_info = reinterpret_cast<int (*)(size_t*, size_t*)>(dlsym(RTLD_DEFAULT, "cudaMemGetInfo"));
  if (loaded_get_device_stats() != nullptr) api.device_stats = call_loaded_device_stats;
  return api;
}

namespace {

struct DriverMemory {
  int64_t free_bytes;
  int64_t total_bytes;
};

// cudaSetDevice + cudaMemGetInfo; nullopt when either is missing or fails.
std::optional<DriverMemory> driver_memory(int index, const CudaMemoryApi& api) {
  if (api.set_device == nullptr || api.mem_get_info == nullptr || api.set_device(index) != 0) return std::nullopt;
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  if (api.mem_get_info(&free_bytes, &total_bytes) != 0) return std::nullopt;
  return DriverMemory{static_cast<int64_t>(free_bytes), static_cast<int64_t>(total_bytes)};
}

}  // namespace

std::optional<int64_t> cuda_free_bytes(int index, const CudaMemoryApi& api) {
  const auto driver = driver_memory(index, api);
  if (!driver) return std::nullopt;
  return driver->free_bytes;
}

std::optional<DeviceMemoryReading> cuda_memory_reading(int index, const CudaMemoryApi& api) {
  const auto driver = driver_memory(index, api);
  if (!driver) return std::nullopt;
  DeviceMemoryReading reading;
  reading.free_bytes = driver->free_bytes;
  if (api.device_stats != nullptr) {
    DeviceStatsBuffer buffer{};
    api.device_stats(index, buffer.bytes);
    DeviceStatsPrefix stats;
    std::memcpy(&stats, buffer.bytes, sizeof(stats));
    reading.allocated_bytes = stats.allocated_bytes[0].current;
    reading.reserved_bytes = stats.reserved_bytes[0].current;
    reading.peak_bytes = stats.allocated_bytes[0].peak;
  } else {
    // No allocator statistics: what the driver says is in use on the device stands in.
    const int64_t used = driver->total_bytes - driver->free_bytes;
    reading.allocated_bytes = used;
    reading.reserved_bytes = used;
    reading.peak_bytes = used;
  }
  return reading;
}

}  // namespace pipeprune
