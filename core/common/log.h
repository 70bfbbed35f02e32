// A small injectable logger, prefixed "[rank r/N]".
//
// Rank 0 prints INFO and above; other ranks WARN and above unless set_all_ranks_verbose(true).
// --quiet raises the threshold to WARN on every rank. Tests swap the sink to capture lines.
// Thread-safe: one mutex around the sink. Results (reports, benchmarks) go to JSON, not here.
#pragma once

#include <fmt/format.h>

#include <functional>
#include <string>

namespace pipeprune::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

using Sink = std::function<void(Level, const std::string& line)>;

void set_rank(int rank, int world_size);
void set_quiet(bool quiet);
void set_debug(bool debug);
void set_all_ranks_verbose(bool verbose);
// Replaces the sink (default: stderr). Returns the previous one so tests can restore it.
Sink set_sink(Sink sink);
bool enabled(Level level);
// Progress of a rank's own share of the work: shown on every rank unless --quiet.
bool progress_enabled();
void write(Level level, const std::string& message);

template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::kDebug)) write(Level::kDebug, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::kInfo)) write(Level::kInfo, fmt::format(f, std::forward<Args>(args)...));
}
// Information about this rank's own share of the work (its memory plan, its layers): shown on
// every rank, prefixed with the rank, unless --quiet.
template <typename... Args>
void rank_info(fmt::format_string<Args...> f, Args&&... args) {
  if (progress_enabled()) write(Level::kInfo, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::kWarn)) write(Level::kWarn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::kError)) write(Level::kError, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace pipeprune::log
