// --log-memory: named checkpoints of one rank's memory use, a summary table, and one CSV for
// the whole job.
//
// checkpoint("layer 3 done") records the seconds since the log was made, this process's host
// RSS and peak RSS (VmRSS/VmHWM) and, when a device probe is given, the device's allocated,
// reserved, peak and free bytes (the columns stay empty without one: the Debian LibTorch has
// no CUDA, so the runner passes a probe only from a CUDA build). Peaks are made monotone
// (never below the previous checkpoint's peak or the current RSS/allocation), so a reset of
// the kernel's or the allocator's counter cannot make a log say the peak went down.
//
// Across ranks: each rank serialize()s its rows, the runner all-gathers the strings (dist's
// Transport; core cannot see it) and the first rank writes merge_csv(all) to memory_log.csv:
// header
//   rank,checkpoint,seconds,host_rss_bytes,host_peak_bytes,device_allocated_bytes,
//   device_reserved_bytes,device_peak_bytes,device_free_bytes
// then one row per checkpoint per rank, by rank then time. Numbers are integers (bytes) and
// seconds with 6 decimals; absent device readings are empty fields; a checkpoint name with a
// comma, quote or line break is quoted as in RFC 4180. Formatting is deterministic: the same
// rows always give the same bytes.
//
// A MemoryLog is used by one thread (the one running the rank's stage).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace pipeprune {

struct DeviceMemoryReading {
  int64_t allocated_bytes = 0;
  int64_t reserved_bytes = 0;
  int64_t peak_bytes = 0;
  int64_t free_bytes = 0;
};

// Reads the device now; nullopt when there is none. Called by checkpoint(), on its thread.
using DeviceMemoryProbe = std::function<std::optional<DeviceMemoryReading>()>;

struct MemoryCheckpoint {
  std::string name;
  double seconds = 0;
  int64_t host_rss_bytes = 0;
  int64_t host_peak_bytes = 0;
  std::optional<DeviceMemoryReading> device;
};

class MemoryLog {
 public:
  // The clock starts now.
  explicit MemoryLog(DeviceMemoryProbe device_probe = nullptr);

  // Records a checkpoint and returns it.
  const MemoryCheckpoint& checkpoint(std::string name);
  const std::vector<MemoryCheckpoint>& rows() const { return rows_; }

  // A fixed-width text table: checkpoint, seconds, host rss, host peak, rss delta (from the
  // previous checkpoint), then the device columns when any row has them.
  std::string summary_table() const;
  static std::string summary_table(const std::vector<MemoryCheckpoint>& rows);

  // This log alone as memory_log.csv with every row under `rank`.
  std::string to_csv(int rank) const;

  // The rows as CSV without the rank column (header first), for the all-gather.
  std::string serialize() const;
  // Inverse of serialize(): FormatError naming the line for anything else.
  static std::vector<MemoryCheckpoint> parse(const std::string& serialized);
  // Entry r of the vector is rank r's serialize(); returns the merged memory_log.csv.
  static std::string merge_csv(const std::vector<std::string>& per_rank_serialized);

 private:
  DeviceMemoryProbe device_probe_;
  std::chrono::steady_clock::time_point start_;
  std::vector<MemoryCheckpoint> rows_;
};

}  // namespace pipeprune
