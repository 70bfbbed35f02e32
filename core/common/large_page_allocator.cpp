#include "core/common/large_page_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <malloc.h>
#include <sys/mman.h>
#include <torch/version.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string>

#include "core/common/error.h"

namespace pipeprune {
namespace {

// Every block starts with this header, kHeader bytes before the pointer ATen sees, so that one
// deleter (the raw one ATen may call with the data pointer alone) frees either kind.
struct Header {
  std::size_t mapped_bytes;  // 0: from the heap
};
constexpr std::size_t kHeader = 64;  // keeps ATen's 64-byte alignment
static_assert(sizeof(Header) <= kHeader);

void release(void* data) {
  if (data == nullptr) return;
  char* base = static_cast<char*>(data) - kHeader;
  const std::size_t mapped = reinterpret_cast<Header*>(base)->mapped_bytes;
  if (mapped == 0) {
    std::free(base);
  } else {
    munmap(base, mapped);
  }
}

void* acquire(std::size_t n) {
  const std::size_t total = n + kHeader;
  void* base = nullptr;
  std::size_t mapped = 0;
  if (n >= kLargePageAllocationBytes) {
    void* region = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region != MAP_FAILED) {
      madvise(region, total, MADV_HUGEPAGE);  // advice only: ignored without THP
      base = region;
      mapped = total;
    }
  }
  if (base == nullptr && posix_memalign(&base, kHeader, total) != 0) base = nullptr;
  if (base == nullptr) throw std::bad_alloc();
  reinterpret_cast<Header*>(base)->mapped_bytes = mapped;
  return static_cast<char*>(base) + kHeader;
}

struct LargePageAllocator final : at::Allocator {
#if TORCH_VERSION_MAJOR >= 2 && TORCH_VERSION_MINOR >= 3 || TORCH_VERSION_MAJOR >= 3
  at::DataPtr allocate(std::size_t n) override { return make(n); }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
#else
  at::DataPtr allocate(std::size_t n) const override { return make(n); }
#endif
  at::DeleterFnPtr raw_deleter() const override { return &release; }

 private:
  static at::DataPtr make(std::size_t n) {
    void* data = n == 0 ? nullptr : acquire(n);
    return {data, data, &release, at::Device(at::DeviceType::CPU)};
  }
};

std::atomic<bool> installed{false};

}  // namespace

bool install_large_page_allocator() {
  static LargePageAllocator allocator;
  const char* env = std::getenv("PIPEPRUNE_ALLOCATOR");
  const std::string choice = env != nullptr ? env : "";
  PIPEPRUNE_CHECK(choice.empty() || choice == "default" || choice == "large-pages", Error,
                  "PIPEPRUNE_ALLOCATOR=" << choice << " is not known; use 'large-pages' (the default: "
                  "tensors of 4 MiB and more in transparent huge pages) or 'default' (ATen's allocator)");
  if (choice == "default") return installed.load();
  if (installed.exchange(true)) return true;
  // Priority above the default's 0, so a later default registration does not replace it.
  c10::SetCPUAllocator(&allocator, /*priority=*/1);
  return true;
}

bool large_page_allocator_installed() { return installed.load(); }

void configure_host_allocation() {
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  install_large_page_allocator();
}

}  // namespace pipeprune
