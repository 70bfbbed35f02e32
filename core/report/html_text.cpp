#include "core/report/html_text.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace pipeprune::html {

std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// fmt's "{}" for a double is the shortest round-trip form (Dragonbox), as nlohmann's dump and
// Python's repr are, so the page shows the JSON's own text for a number.
std::string exact_number(double value) { return fmt::format("{}", value); }

std::string format_percent(double fraction, int decimals) { return fmt::format("{:.{}f}%", fraction * 100, decimals); }

std::string format_seconds(double seconds) {
  const double magnitude = std::fabs(seconds);
  if (magnitude == 0) return "0 s";
  if (magnitude < 0.1) return fmt::format("{:.3g} s", seconds);
  if (magnitude < 10) return fmt::format("{:.2f} s", seconds);
  if (magnitude < 1000) return fmt::format("{:.1f} s", seconds);
  return fmt::format("{:.0f} s", seconds);
}

std::string format_number(double value, int significant) {
  if (!std::isfinite(value)) return fmt::format("{}", value);
  if (value == 0) return "0";
  // Decimals so that `significant` digits show; none for large values (never "1.235e+05").
  const int digits_before = static_cast<int>(std::floor(std::log10(std::fabs(value)))) + 1;
  const int decimals = std::max(0, significant - digits_before);
  std::string text = fmt::format("{:.{}f}", value, decimals);
  if (text.find('.') != std::string::npos) {
    while (text.back() == '0') text.pop_back();
    if (text.back() == '.') text.pop_back();
  }
  return text;
}

}  // namespace pipeprune::html
