#include "dist/abort_cleanup.h"

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
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  cleanup_paths().clear();
}

}  // namespace pipeprune
