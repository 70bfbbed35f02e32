// What the operating system says about memory: this process's RSS and peak RSS (VmRSS/VmHWM
// from /proc/self/status) and the host's MemAvailable (/proc/meminfo). Values in bytes; 0 when
// the file cannot be read (non-Linux).
#pragma once

#include <cstdint>
#include <string>

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

// "1.50 GiB", "12.0 MiB", "512 B"
std::string format_bytes(int64_t bytes);
// Parses "70GiB", "8GB", "512MiB", "1.5TiB", "1024" (bytes). ConfigError naming `flag` otherwise.
int64_t parse_bytes(const std::string& text, const std::string& flag);

}  // namespace pipeprune
