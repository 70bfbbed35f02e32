#include "dist/abort_cleanup.h"

#include "core/common/log.h"
#include "core/io/run_journal.h"

#include <mutex>
#include <set>

namespace pipeprune {
namespace {

std::mutex& cleanup_mutex() {
  static std::mutex m;
  return m;
}
std::set<std::filesystem::path>& cleanup_paths() {
  static std::set<std::filesystem::path> paths;
  return paths;
}

}  // namespace

void register_abort_cleanup(const std::filesystem::path& path) {
  std::lock_guard<std::mutex> lock(cleanup_mutex());
  cleanup_paths().insert(path);
}

void unregister_abort_cleanup(const std::filesystem::path& path) {
  std::lock_guard<std::mutex> lock(cleanup_mutex());
  cleanup_paths().erase(path);
}

void run_abort_cleanup() noexcept {
  std::lock_guard<std::mutex> lock(cleanup_mutex());
  for (const auto& path : cleanup_paths()) {
    try {
      // A staged output holding finished layers is the work a --resume continues.
      const size_t done = run_journal::done_layers(path).size();
      if (done > 0) {
        log::warn("kept {}: {} layer(s) finished; rerun the same command with --resume to continue, or with "
                  "--overwrite to start over", path.string(), done);
        continue;
      }
    } catch (...) {
    }
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  cleanup_paths().clear();
}

}  // namespace pipeprune
