#include "core/common/log.h"

#include <cstdio>
#include <mutex>

namespace pipeprune::log {
namespace {

struct State {
  std::mutex mutex;
  int rank = 0;
  int world_size = 1;
  bool quiet = false;
  bool debug = false;
  bool all_ranks = false;
  Sink sink;
};

State& state() {
  static State s;
  return s;
}

const char* level_name(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warning";
    case Level::kError: return "error";
  }
  return "?";
}

}  // namespace

void set_rank(int rank, int world_size) {
  std::lock_guard<std::mutex> lock(state().mutex);
  state().rank = rank;
  state().world_size = world_size;
}
void set_quiet(bool quiet) { state().quiet = quiet; }
void set_debug(bool debug) { state().debug = debug; }
void set_all_ranks_verbose(bool verbose) { state().all_ranks = verbose; }

Sink set_sink(Sink sink) {
  std::lock_guard<std::mutex> lock(state().mutex);
  Sink previous = std::move(state().sink);
  state().sink = std::move(sink);
  return previous;
}

bool enabled(Level level) {
  const State& s = state();
  if (level >= Level::kWarn) return true;
  if (s.quiet) return false;
  if (level == Level::kDebug && !s.debug) return false;
  return s.rank == 0 || s.all_ranks;
}

bool progress_enabled() { return !state().quiet; }

void write(Level level, const std::string& message) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  std::string line;
  if (s.world_size > 1) line = fmt::format("[rank {}/{}] ", s.rank, s.world_size);
  if (level != Level::kInfo) line += fmt::format("{}: ", level_name(level));
  line += message;
  if (s.sink) {
    s.sink(level, line);
    return;
  }
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

}  // namespace pipeprune::log
