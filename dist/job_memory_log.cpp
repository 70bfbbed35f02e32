#include "dist/job_memory_log.h"

#include "core/common/files.h"
#include "core/common/log.h"
#include "dist/cuda_memory.h"

namespace pipeprune {

JobMemoryLog::JobMemoryLog(bool enabled, std::filesystem::path csv_path, c10::Device device)
    : csv_path_(std::move(csv_path)) {
  if (!enabled) return;
  DeviceMemoryProbe probe;
  if (device.is_cuda()) {
    const int index = device.has_index() ? device.index() : 0;
    probe = [index] { return cuda_memory_reading(index); };
  }
  log_ = std::make_unique<MemoryLog>(std::move(probe));
}

void JobMemoryLog::checkpoint(const std::string& name) {
  if (log_) log_->checkpoint(name);
}

int64_t JobMemoryLog::host_peak_bytes() const {
  int64_t peak = 0;
  if (log_) {
    for (const auto& row : log_->rows()) peak = std::max(peak, row.host_peak_bytes);
  }
  return peak;
}

void JobMemoryLog::finish(Transport& transport) {
  if (!log_) return;
  const std::vector<std::string> all = transport.all_gather_string(log_->serialize());
  log::rank_info("memory log of this rank:\n{}", log_->summary_table());
  if (transport.rank() == 0) {
    write_file_atomic(csv_path_, MemoryLog::merge_csv(all));
    log::info("memory log written to {}", csv_path_.string());
  }
}

}  // namespace pipeprune
