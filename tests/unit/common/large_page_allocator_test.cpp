// The huge-page CPU allocator: large tensors get their own MADV_HUGEPAGE mapping that is
// unmapped when freed (so resident memory falls back), small ones come from the heap, and
// ATen's raw interface works with either.
#include "core/common/large_page_allocator.h"

#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "core/common/error.h"

namespace pipeprune {
namespace {

// The /proc/self/smaps block of the mapping holding `address`, or "" when none does.
std::string smaps_block(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  const auto target = reinterpret_cast<std::uintptr_t>(address);
  std::string line, block;
  bool inside = false;
  while (std::getline(smaps, line)) {
    std::uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-' && line.find(':') > line.find(' ')) {
      if (inside) return block;
      inside = target >= lo && target < hi;
      block = line + "\n";
    } else if (inside) {
      block += line + "\n";
    }
  }
  return inside ? block : "";
}

int64_t smaps_kib(const std::string& block, const std::string& field) {
  const auto at = block.find("\n" + field + ":");
  if (at == std::string::npos) return -1;
  return std::stoll(block.substr(at + field.size() + 2));
}

bool transparent_huge_pages_usable() {
  std::ifstream mode("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string text((std::istreambuf_iterator<char>(mode)), std::istreambuf_iterator<char>());
  return text.find("[always]") != std::string::npos || text.find("[madvise]") != std::string::npos;
}

class LargePageAllocatorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { install_large_page_allocator(); }
};

TEST_F(LargePageAllocatorTest, IsAtensCpuAllocator) {
  EXPECT_TRUE(large_page_allocator_installed());
  EXPECT_NE(c10::GetCPUAllocator()->raw_deleter(), nullptr);
  // Installing twice changes nothing.
  at::Allocator* before = c10::GetCPUAllocator();
  install_large_page_allocator();
  EXPECT_EQ(c10::GetCPUAllocator(), before);
}

TEST_F(LargePageAllocatorTest, UnknownEnvironmentValue_NamedError) {
  setenv("PIPEPRUNE_ALLOCATOR", "huge", 1);
  try {
    install_large_page_allocator();
    ADD_FAILURE() << "no error for PIPEPRUNE_ALLOCATOR=huge";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("PIPEPRUNE_ALLOCATOR=huge"), std::string::npos) << e.what();
  }
  setenv("PIPEPRUNE_ALLOCATOR", "large-pages", 1);
  EXPECT_TRUE(install_large_page_allocator());
  unsetenv("PIPEPRUNE_ALLOCATOR");
}

TEST_F(LargePageAllocatorTest, LargeTensor_OwnMapping_UnmappedWhenFreed) {
  const int64_t elements = 16 << 20 >> 2;  // 16 MiB of floats
  const void* data = nullptr;
  {
    at::Tensor t = at::empty({elements}, at::kFloat);
    data = t.data_ptr();
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(data) % 64, 0u);
    t.fill_(3.0f);
    EXPECT_EQ(t.sum().item<double>(), 3.0 * elements);
    const std::string block = smaps_block(data);
    ASSERT_FALSE(block.empty());
    EXPECT_GE(smaps_kib(block, "Rss"), 16 * 1024);
    if (transparent_huge_pages_usable()) {
      // At least the 2 MiB-aligned middle of the range is in huge pages (the kernel may be out
      // of free huge pages; then this is 0 and says so).
      EXPECT_GT(smaps_kib(block, "AnonHugePages"), 0) << block;
    }
  }
  // Freed: the range is no longer mapped (nothing is cached).
  EXPECT_TRUE(smaps_block(data).empty() || smaps_kib(smaps_block(data), "Rss") < 1024);
}

TEST_F(LargePageAllocatorTest, SmallAndEmptyTensors) {
  at::Tensor small = at::arange(1000, at::kFloat);
  EXPECT_EQ(small.sum().item<double>(), 999.0 * 1000 / 2);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(small.data_ptr()) % 64, 0u);
  at::Tensor empty = at::empty({0}, at::kFloat);
  EXPECT_EQ(empty.numel(), 0);
  // Just below and at the threshold.
  for (std::size_t bytes : {kLargePageAllocationBytes - 4, kLargePageAllocationBytes}) {
    at::Tensor t = at::ones({static_cast<int64_t>(bytes / 4)}, at::kFloat);
    EXPECT_EQ(t.sum().item<double>(), static_cast<double>(bytes / 4));
  }
}

TEST_F(LargePageAllocatorTest, RawInterface_BothKinds) {
  at::Allocator* allocator = c10::GetCPUAllocator();
  for (std::size_t bytes : {std::size_t{256}, kLargePageAllocationBytes * 2}) {
    void* p = allocator->raw_allocate(bytes);
    ASSERT_NE(p, nullptr);
    static_cast<char*>(p)[0] = 1;
    static_cast<char*>(p)[bytes - 1] = 2;
    allocator->raw_deallocate(p);
  }
}

}  // namespace
}  // namespace pipeprune
