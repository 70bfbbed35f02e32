#include "core/memory/host_memory.h"

#include <malloc.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace pipeprune {
namespace {

// Reads "Key:   12345 kB" from a /proc file; -1 when absent.
int64_t read_kb_field(const char* path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) == 0 && line.size() > key.size() && line[key.size()] == ':') {
      std::istringstream fields(line.substr(key.size() + 1));
      int64_t kb = 0;
      fields >> kb;
      return kb * 1024;
    }
  }
  return -1;
}

}  // namespace

int64_t process_rss_bytes() { return std::max<int64_t>(0, read_kb_field("/proc/self/status", "VmRSS")); }
int64_t process_peak_rss_bytes() { return std::max<int64_t>(0, read_kb_field("/proc/self/status", "VmHWM")); }
int64_t host_available_bytes() { return std::max<int64_t>(0, read_kb_field("/proc/meminfo", "MemAvailable")); }
int64_t host_total_bytes() { return std::max<int64_t>(0, read_kb_field("/proc/meminfo", "MemTotal")); }

void return_free_memory() { malloc_trim(0); }

std::string host_name() {
  char buffer[256] = {0};
  if (gethostname(buffer, sizeof(buffer) - 1) != 0) return "unknown";
  return buffer;
}

}  // namespace pipeprune
