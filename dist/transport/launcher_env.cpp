#include "dist/transport/launcher_env.h"

#include <cstdlib>
#include <initializer_list>
#include <string>

#include "dist/transport/transport.h"

namespace pipeprune::launcher {
namespace {

bool is_set(const EnvLookup& env, const char* name) {
  const char* value = env(name);
  return value != nullptr && value[0] != '\0';
}

// A positive integer, or nullopt for absent or malformed values (a launcher never sets those,
// so we treat them as absent rather than failing the run).
std::optional<int> positive_int(const EnvLookup& env, const char* name) {
  const char* value = env(name);
  if (value == nullptr || value[0] == '\0') return std::nullopt;
  char* end = nullptr;
  long parsed = std::strtol(value, &end, 10);
  if (*end != '\0' || parsed < 0 || parsed > 1 << 24) return std::nullopt;
  return static_cast<int>(parsed);
}

std::optional<int> first_int(const EnvLookup& env, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (auto value = positive_int(env, name)) return value;
  }
  return std::nullopt;
}

std::optional<int> slurm_step_tasks(const EnvLookup& env) {
  if (!is_set(env, "SLURM_STEP_ID")) return std::nullopt;
  return positive_int(env, "SLURM_STEP_NUM_TASKS");
}

}  // namespace

bool launched_under_mpi(const EnvLookup& env) {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE"}) {
    if (is_set(env, name)) return true;
  }
  auto tasks = slurm_step_tasks(env);
  return tasks && *tasks > 1;
}

std::optional<int> launcher_world_size(const EnvLookup& env) {
  if (auto size = first_int(env, {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"})) {
    return size;
  }
  return slurm_step_tasks(env);
}

std::optional<int> local_rank(const EnvLookup& env) {
  return first_int(env, {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK",
                         "SLURM_LOCALID"});
}

std::optional<int> local_size(const EnvLookup& env) {
  const auto size = first_int(env, {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "MV2_COMM_WORLD_LOCAL_SIZE",
                                    "SLURM_NTASKS_PER_NODE"});
  if (size && *size >= 1) return size;
  return std::nullopt;
}

EnvLookup process_env() {
  return [](const char* name) -> const char* { return std::getenv(name); };
}

}  // namespace pipeprune::launcher

namespace pipeprune {

bool launched_under_mpi() { return launcher::launched_under_mpi(launcher::process_env()); }

}  // namespace pipeprune
