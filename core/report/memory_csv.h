// Reads the memory_log.csv that `prune --log-memory` writes (format: core/memory/memory_log.h)
// for the report's memory chart: the rank, checkpoint name, seconds and host RSS/peak of every
// row. Columns are found by their header names, so a column added later does not break it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pipeprune {

struct MemorySample {
  int rank = 0;
  std::string checkpoint;
  double seconds = 0;
  int64_t host_rss_bytes = 0;
  int64_t host_peak_bytes = 0;
};

// The rows of a memory log in file order. FormatError naming `source` (and the line) for a
// missing column, a row of the wrong width or a field that is not a number.
std::vector<MemorySample> parse_memory_csv(const std::string& text, const std::string& source);

}  // namespace pipeprune
