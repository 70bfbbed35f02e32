// --log-memory for a job: named checkpoints of host (and device) memory on every rank, a
// summary table per rank at the end, and one memory_log.csv (with a rank column) written by the
// first rank. Disabled, every call is a no-op, so jobs call it unconditionally.
#pragma once

#include <c10/core/Device.h>

#include <filesystem>
#include <memory>
#include <string>

#include "core/memory/memory_log.h"
#include "dist/transport/transport.h"

namespace pipeprune {

class JobMemoryLog {
 public:
  // On a CUDA `device`, each checkpoint also reads the GPU's allocated/reserved/peak/free bytes
  // (dist/cuda_memory.h); on the CPU the device columns stay empty.
  JobMemoryLog(bool enabled, std::filesystem::path csv_path, c10::Device device);
  void checkpoint(const std::string& name);
  // Collective: gathers every rank's rows, writes the CSV on the first rank, logs the table.
  void finish(Transport& transport);
  // Highest host peak seen so far (0 when disabled).
  int64_t host_peak_bytes() const;

 private:
  std::unique_ptr<MemoryLog> log_;
  std::filesystem::path csv_path_;
};

}  // namespace pipeprune
