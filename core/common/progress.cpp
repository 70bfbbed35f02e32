#include "core/common/progress.h"

#include <cmath>

#include "core/common/log.h"

namespace pipeprune {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  if (seconds < 60) return fmt::format("{:.1f}s", seconds);
  const auto total = static_cast<int64_t>(seconds + 0.5);
  if (total < 3600) return fmt::format("{}m{:02d}s", total / 60, total % 60);
  return fmt::format("{}h{:02d}m", total / 3600, (total % 3600) / 60);
}

Progress::Progress(std::string label, int64_t total, double min_interval_s, bool every_rank)
    : label_(std::move(label)),
      total_(total),
      min_interval_s_(min_interval_s),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_),
      every_rank_(every_rank) {}

double Progress::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(int64_t done, const std::string& detail) {
  if (!(every_rank_ ? log::progress_enabled() : log::enabled(log::Level::kInfo))) return;
  const auto now = std::chrono::steady_clock::now();
  const double since_print = std::chrono::duration<double>(now - last_print_).count();
  const bool finished = done >= total_;
  if (!finished && since_print < min_interval_s_) return;
  last_print_ = now;
  const double elapsed = elapsed_s();
  const double eta = done > 0 ? elapsed * static_cast<double>(total_ - done) / done : NAN;
  std::string line = fmt::format("{} {}/{}", label_, done, total_);
  if (!detail.empty()) line += ", " + detail;
  line += fmt::format(", elapsed {}", format_duration(elapsed));
  if (!finished) line += fmt::format(", ETA {}", format_duration(eta));
  log::write(log::Level::kInfo, line);
}

}  // namespace pipeprune
