#include "core/common/byte_size.h"

#include <cctype>
#include <cmath>

#include <fmt/format.h>

#include "core/common/error.h"

namespace pipeprune {

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
