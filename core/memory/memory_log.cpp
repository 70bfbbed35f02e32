#include "core/memory/memory_log.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "core/common/csv.h"
#include "core/common/error.h"
#include "core/memory/host_memory.h"

namespace pipeprune {
namespace {

constexpr const char* kColumns =
    "checkpoint,seconds,host_rss_bytes,host_peak_bytes,device_allocated_bytes,device_reserved_bytes,"
    "device_peak_bytes,device_free_bytes";
constexpr size_t kFieldCount = 8;

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

void append_row(std::string& out, const MemoryCheckpoint& row) {
  out += csv_field(row.name);
  out += fmt::format(",{:.6f},{},{}", row.seconds, row.host_rss_bytes, row.host_peak_bytes);
  if (row.device) {
    const DeviceMemoryReading& d = *row.device;
    out += fmt::format(",{},{},{},{}\n", d.allocated_bytes, d.reserved_bytes, d.peak_bytes, d.free_bytes);
  } else {
    out += ",,,,\n";
  }
}

MemoryCheckpoint parse_row(const std::vector<std::string>& f, const std::string& source, size_t line) {
  PIPEPRUNE_CHECK(f.size() == kFieldCount, FormatError,
                  source << " line " << line << ": " << f.size() << " fields, expected " << kFieldCount);
  MemoryCheckpoint row;
  row.name = f[0];
  row.seconds = parse_csv_number<double>(f[1], source, line, "seconds");
  row.host_rss_bytes = parse_csv_number<int64_t>(f[2], source, line, "host_rss_bytes");
  row.host_peak_bytes = parse_csv_number<int64_t>(f[3], source, line, "host_peak_bytes");
  const bool none = f[4].empty() && f[5].empty() && f[6].empty() && f[7].empty();
  if (!none) {
    DeviceMemoryReading d;
    d.allocated_bytes = parse_csv_number<int64_t>(f[4], source, line, "device_allocated_bytes");
    d.reserved_bytes = parse_csv_number<int64_t>(f[5], source, line, "device_reserved_bytes");
    d.peak_bytes = parse_csv_number<int64_t>(f[6], source, line, "device_peak_bytes");
    d.free_bytes = parse_csv_number<int64_t>(f[7], source, line, "device_free_bytes");
    row.device = d;
  }
  return row;
}

std::vector<MemoryCheckpoint> parse_rows(const std::string& text, const std::string& source) {
  const auto records = split_csv_records(text, source);
  PIPEPRUNE_CHECK(!records.empty(), FormatError, source << ": empty text; expected the header " << kColumns);
  std::string header;
  for (size_t i = 0; i < records[0].size(); ++i) header += (i ? "," : "") + records[0][i];
  PIPEPRUNE_CHECK(header == kColumns, FormatError, source << ": header '" << header << "' is not '" << kColumns << "'");
  std::vector<MemoryCheckpoint> rows;
  for (size_t i = 1; i < records.size(); ++i) rows.push_back(parse_row(records[i], source, i + 1));
  return rows;
}

std::string merged_header() { return std::string("rank,") + kColumns + "\n"; }

void append_ranked(std::string& out, int rank, const std::vector<MemoryCheckpoint>& rows) {
  for (const MemoryCheckpoint& row : rows) {
    out += std::to_string(rank) + ",";
    append_row(out, row);
  }
}

// A checkpoint name on one table line.
std::string one_line(std::string text) {
  std::replace_if(text.begin(), text.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
  return text;
}

std::string signed_bytes(int64_t bytes) { return (bytes >= 0 ? "+" : "") + format_bytes(bytes); }

}  // namespace

MemoryLog::MemoryLog(DeviceMemoryProbe device_probe)
    : device_probe_(std::move(device_probe)), start_(std::chrono::steady_clock::now()) {}

const MemoryCheckpoint& MemoryLog::checkpoint(std::string name) {
  MemoryCheckpoint row;
  row.name = std::move(name);
  row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  row.host_rss_bytes = process_rss_bytes();
  const int64_t previous_peak = rows_.empty() ? 0 : rows_.back().host_peak_bytes;
  row.host_peak_bytes = std::max({process_peak_rss_bytes(), row.host_rss_bytes, previous_peak});
  if (device_probe_) {
    row.device = device_probe_();
    if (row.device) {
      int64_t previous_device_peak = 0;
      for (auto it = rows_.rbegin(); it != rows_.rend(); ++it) {
        if (it->device) {
          previous_device_peak = it->device->peak_bytes;
          break;
        }
      }
      row.device->peak_bytes = std::max({row.device->peak_bytes, row.device->allocated_bytes, previous_device_peak});
    }
  }
  rows_.push_back(std::move(row));
  return rows_.back();
}

std::string MemoryLog::summary_table() const { return summary_table(rows_); }

std::string MemoryLog::summary_table(const std::vector<MemoryCheckpoint>& rows) {
  const bool device =
      std::any_of(rows.begin(), rows.end(), [](const MemoryCheckpoint& r) { return r.device.has_value(); });
  std::vector<std::vector<std::string>> cells;
  cells.push_back({"checkpoint", "seconds", "host rss", "host peak", "rss delta"});
  if (device) {
    for (const char* h : {"device allocated", "device reserved", "device peak", "device free"}) cells[0].push_back(h);
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    const MemoryCheckpoint& r = rows[i];
    const int64_t delta = i == 0 ? 0 : r.host_rss_bytes - rows[i - 1].host_rss_bytes;
    cells.push_back({one_line(r.name), fmt::format("{:.3f}", r.seconds), format_bytes(r.host_rss_bytes),
                     format_bytes(r.host_peak_bytes), signed_bytes(delta)});
    if (device) {
      if (r.device) {
        for (int64_t v : {r.device->allocated_bytes, r.device->reserved_bytes, r.device->peak_bytes,
                          r.device->free_bytes}) {
          cells.back().push_back(format_bytes(v));
        }
      } else {
        cells.back().insert(cells.back().end(), 4, "-");
      }
    }
  }
  std::vector<size_t> width(cells[0].size(), 0);
  for (const auto& line : cells) {
    for (size_t c = 0; c < line.size(); ++c) width[c] = std::max(width[c], line[c].size());
  }
  std::string out;
  for (const auto& line : cells) {
    std::string text = fmt::format("{:<{}}", line[0], width[0]);
    for (size_t c = 1; c < line.size(); ++c) text += fmt::format("  {:>{}}", line[c], width[c]);
    out += text + "\n";
  }
  return out;
}

std::string MemoryLog::to_csv(int rank) const {
  std::string out = merged_header();
  append_ranked(out, rank, rows_);
  return out;
}

std::string MemoryLog::serialize() const {
  std::string out = kColumns;
  out += '\n';
  for (const MemoryCheckpoint& row : rows_) append_row(out, row);
  return out;
}

std::vector<MemoryCheckpoint> MemoryLog::parse(const std::string& serialized) {
  return parse_rows(serialized, "memory log");
}

std::string MemoryLog::merge_csv(const std::vector<std::string>& per_rank_serialized) {
  std::string out = merged_header();
  for (size_t rank = 0; rank < per_rank_serialized.size(); ++rank) {
    std::vector<MemoryCheckpoint> rows =
        parse_rows(per_rank_serialized[rank], "memory log of rank " + std::to_string(rank));
    std::stable_sort(rows.begin(), rows.end(),
                     [](const MemoryCheckpoint& a, const MemoryCheckpoint& b) { return a.seconds < b.seconds; });
    append_ranked(out, static_cast<int>(rank), rows);
  }
  return out;
}

}  // namespace pipeprune
