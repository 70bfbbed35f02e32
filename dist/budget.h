// How much memory a rank may use when --max-memory does not say: the free memory of its device
// (host RAM for the CPU) minus a reserve of 15% (at least 2 GiB), shared evenly by the ranks
// placed on the same host.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pipeprune {

int64_t default_budget_bytes(c10::Device device, int ranks_sharing);
// How many ranks (including `rank`) run on the same host as `rank`.
int ranks_on_host(const std::vector<std::string>& hosts, int rank);
// Free minus the reserve: free - max(15% of free, 2 GiB), never below zero.
int64_t after_reserve(int64_t free_bytes);

}  // namespace pipeprune

namespace pipeprune {

// --max-memory SPEC: comma-separated entries "DEVICE=SIZE" for every rank, or "RANK:DEVICE=SIZE"
// for one rank (DEVICE is cpu or cuda; SIZE like 70GiB). A rank's budget is its own entry for
// its device type, else the all-ranks entry, else unset. ConfigError naming --max-memory.
std::optional<int64_t> budget_from_spec(const std::string& spec, int rank, c10::DeviceType device);

}  // namespace pipeprune
