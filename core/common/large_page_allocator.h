// ATen's CPU allocator for pipeprune: tensors of 4 MiB and more come from their own anonymous
// mapping marked MADV_HUGEPAGE and go back to the system when freed; smaller ones from the heap.
//
// Why: a forward pass allocates fresh scratch of tens to hundreds of MiB per op (scores,
// q/k/v, gate/up), and main() keeps large allocations on mmap so that freed layers leave the
// process (docs/memory.md). With 4 KiB pages each fresh tensor faults in one page at a time
// (~2.2 us per page was measured, docs/performance.md); with transparent huge pages in
// "madvise" mode (Debian's and most distributions' default) one fault maps 2 MiB. Resident
// memory stays what the memory planner counts: nothing is cached, every free unmaps.
// Where the kernel has no transparent huge pages the advice is ignored and nothing changes.
#pragma once

#include <cstddef>

namespace pipeprune {

// Installs it as ATen's CPU allocator (process-wide; call once at start, before any tensor),
// unless the environment says PIPEPRUNE_ALLOCATOR=default (ATen's own, for A/B measurements or
// a kernel whose huge pages misbehave; "large-pages" or unset: this one). Returns whether it is
// installed; throws Error naming the variable for any other value.
bool install_large_page_allocator();

// Whether it is installed (for tests).
bool large_page_allocator_installed();

// The process's host-memory policy, for main() and the benchmarks alike: glibc's mmap threshold
// pinned at 1 MiB (without it glibc raises the threshold after the first frees and keeps freed
// layers in the heap, so resident memory would drift above what the memory planner accounts
// for), then install_large_page_allocator().
void configure_host_allocation();

// Allocations at or above this size get their own huge-page mapping.
constexpr std::size_t kLargePageAllocationBytes = std::size_t{4} << 20;

}  // namespace pipeprune
