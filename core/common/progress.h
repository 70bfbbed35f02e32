// Progress lines for long work: "label i/N, detail, elapsed, ETA", at most every
// `min_interval_s` (the first one `min_interval_s` after the start) and always at the end. Printed through the logger at INFO: by rank 0 only,
// or with `every_rank` by each rank for its own part of the pipeline (prefixed "[rank r/N]").
// --quiet silences them.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace pipeprune {

class Progress {
 public:
  Progress(std::string label, int64_t total, double min_interval_s = 2.0, bool every_rank = false);
  // Reports that `done` of `total` units are complete; prints when the interval has passed or
  // when done == total. `detail` is appended (e.g. "stats pass").
  void update(int64_t done, const std::string& detail = "");
  double elapsed_s() const;

 private:
  std::string label_;
  int64_t total_;
  double min_interval_s_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_print_;
  bool every_rank_ = false;
};

// "1h02m", "3m05s", "12.3s"
std::string format_duration(double seconds);

}  // namespace pipeprune
