#include "dist/budget.h"

#include <algorithm>

#include "core/common/error.h"
#include "core/memory/host_memory.h"
#include "dist/cuda_allocator.h"
#include "dist/cuda_memory.h"

namespace pipeprune {

int64_t after_reserve(int64_t free_bytes) {
  const int64_t reserve = std::max<int64_t>(free_bytes * 15 / 100, int64_t{2} << 30);
  return std::max<int64_t>(0, free_bytes - reserve);
}

int ranks_on_host(const std::vector<std::string>& hosts, int rank) {
  return static_cast<int>(std::count(hosts.begin(), hosts.end(), hosts[static_cast<size_t>(rank)]));
}


int64_t default_budget_bytes(c10::Device device, int ranks_sharing) {
  if (device.is_cuda()) {
    // One rank per GPU: the device's own free memory is this rank's. What LibTorch's caching
    // allocator holds unused (after an earlier job of this process, e.g. prune before its eval)
    // would be reused, so it goes back to the driver before the count.
    release_cuda_allocator_cache();
    const std::optional<int64_t> free_bytes = cuda_free_bytes(device.has_index() ? device.index() : 0);
    PIPEPRUNE_CHECK(free_bytes.has_value(), ConfigError,
                    "--device " << device.str() << ": cannot query the GPU's free memory; pass --max-memory cuda=SIZE");
    return after_reserve(*free_bytes);
  }
  // Ranks on one host share its RAM.
  return after_reserve(host_available_bytes()) / std::max(1, ranks_sharing);
}

}  // namespace pipeprune

namespace pipeprune {

std::optional<int64_t> budget_from_spec(const std::string& spec, int rank, c10::DeviceType device) {
  std::optional<int64_t> any_rank;
  std::optional<int64_t> this_rank;
  const std::string wanted = device == c10::DeviceType::CUDA ? "cuda" : "cpu";
  size_t begin = 0;
  while (begin <= spec.size()) {
    size_t end = spec.find(',', begin);
    if (end == std::string::npos) end = spec.size();
    std::string entry = spec.substr(begin, end - begin);
    begin = end + 1;
    if (entry.empty()) continue;
    std::optional<int> entry_rank;
    const size_t colon = entry.find(':');
    if (colon != std::string::npos) {
      try {
        entry_rank = std::stoi(entry.substr(0, colon));
      } catch (const std::exception&) {
        PIPEPRUNE_FAIL(ConfigError, "--max-memory: '" << entry << "' should look like 0:cuda=40GiB");
      }
      entry = entry.substr(colon + 1);
    }
    const size_t equals = entry.find('=');
    PIPEPRUNE_CHECK(equals != std::string::npos, ConfigError,
                    "--max-memory: '" << entry << "' should look like cuda=70GiB or cpu=100GiB");
    const std::string kind = entry.substr(0, equals);
    PIPEPRUNE_CHECK(kind == "cpu" || kind == "cuda", ConfigError,
                    "--max-memory: unknown device '" << kind << "' (use cpu or cuda)");
    const int64_t bytes = parse_bytes(entry.substr(equals + 1), "--max-memory");
    if (kind != wanted) continue;
    if (!entry_rank) any_rank = bytes;
    else if (*entry_rank == rank) this_rank = bytes;
  }
  return this_rank ? this_rank : any_rank;
}

}  // namespace pipeprune
