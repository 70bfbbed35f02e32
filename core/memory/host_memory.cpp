#include "core/memory/host_memory.h"

#include <malloc.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/common/error.h"

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

std::string format_bytes(int64_t bytes) {
  const double value = static_cast<double>(bytes);
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  double scaled = value;
  while (std::fabs(scaled) >= 1024.0 && unit < 4) {
    scaled /= 1024.0;
    ++unit;
  }
  if (unit == 0) return fmt::format("{} B", bytes);
  return fmt::format("{:.2f} {}", scaled, units[unit]);
}

int64_t parse_bytes(const std::string& text, const std::string& flag) {
  size_t pos = 0;
  double number = 0;
  try {
    number = std::stod(text, &pos);
  } catch (const std::exception&) {
    PIPEPRUNE_FAIL(ConfigError, flag << ": '" << text << "' is not a size; write e.g. 70GiB, 512MiB or 8GB");
  }
  std::string unit = text.substr(pos);
  unit.erase(0, unit.find_first_not_of(' '));
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double scale = 0;
  if (unit.empty() || unit == "b") scale = 1;
  else if (unit == "kib" || unit == "k") scale = 1024.0;
  else if (unit == "mib" || unit == "m") scale = 1024.0 * 1024;
  else if (unit == "gib" || unit == "g") scale = 1024.0 * 1024 * 1024;
  else if (unit == "tib" || unit == "t") scale = 1024.0 * 1024 * 1024 * 1024;
  else if (unit == "kb") scale = 1e3;
  else if (unit == "mb") scale = 1e6;
  else if (unit == "gb") scale = 1e9;
  else if (unit == "tb") scale = 1e12;
  PIPEPRUNE_CHECK(scale > 0 && number >= 0 && std::isfinite(number), ConfigError,
                  flag << ": '" << text << "' is not a size; write e.g. 70GiB, 512MiB or 8GB");
  return static_cast<int64_t>(std::llround(number * scale));
}

}  // namespace pipeprune
