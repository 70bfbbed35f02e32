#include "core/report/memory_csv.h"

#include <algorithm>

#include "core/common/csv.h"
#include "core/common/error.h"

namespace pipeprune {
namespace {

size_t column_index(const std::vector<std::string>& header, const std::string& name, const std::string& source) {
  const auto it = std::find(header.begin(), header.end(), name);
  PIPEPRUNE_CHECK(it != header.end(), FormatError,
                  source << ": no column '" << name << "' in the header; expected the CSV of prune --log-memory");
  return static_cast<size_t>(it - header.begin());
}

}  // namespace

std::vector<MemorySample> parse_memory_csv(const std::string& text, const std::string& source) {
  const auto records = split_csv_records(text, source);
  PIPEPRUNE_CHECK(!records.empty(), FormatError, source << ": empty; expected the CSV of prune --log-memory");
  const std::vector<std::string>& header = records[0];
  const size_t rank = column_index(header, "rank", source);
  const size_t checkpoint = column_index(header, "checkpoint", source);
  const size_t seconds = column_index(header, "seconds", source);
  const size_t rss = column_index(header, "host_rss_bytes", source);
  const size_t peak = column_index(header, "host_peak_bytes", source);
  std::vector<MemorySample> samples;
  for (size_t i = 1; i < records.size(); ++i) {
    const std::vector<std::string>& f = records[i];
    // Record i is line i + 1 unless an earlier checkpoint name holds a quoted line break.
    const size_t line = i + 1;
    PIPEPRUNE_CHECK(f.size() == header.size(), FormatError,
                    source << " line " << line << ": " << f.size() << " fields, the header has " << header.size());
    MemorySample sample;
    sample.rank = parse_csv_number<int>(f[rank], source, line, "rank");
    sample.checkpoint = f[checkpoint];
    sample.seconds = parse_csv_number<double>(f[seconds], source, line, "seconds");
    sample.host_rss_bytes = parse_csv_number<int64_t>(f[rss], source, line, "host_rss_bytes");
    sample.host_peak_bytes = parse_csv_number<int64_t>(f[peak], source, line, "host_peak_bytes");
    samples.push_back(std::move(sample));
  }
  return samples;
}

}  // namespace pipeprune
