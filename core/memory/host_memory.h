// What the operating system says about memory: this process's RSS and peak RSS (VmRSS/VmHWM
// from /proc/self/status) and the host's MemAvailable (/proc/meminfo). Values in bytes; 0 when
// the file cannot be read (non-Linux).
#pragma once

#include <cstdint>
#include <string>

#include "core/common/byte_size.h"  // format_bytes, parse_bytes: most callers came here for them

namespace pipeprune {

int64_t process_rss_bytes();
int64_t process_peak_rss_bytes();
int64_t host_available_bytes();
int64_t host_total_bytes();
std::string host_name();

// Gives the heap's free pages back to the system (malloc_trim). Called between layers: the
// small tensors of a layer's passes fragment the heap, and without it resident memory creeps
// up by a fraction of a MiB per layer, past what the memory plan accounts for.
void return_free_memory();


}  // namespace pipeprune
