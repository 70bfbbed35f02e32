// What the MPI launcher (mpirun, mpiexec, srun) tells a process through its environment.
//
// The one place that reads these variables: the transport factory and launch/ (threads per
// rank, which GPU) use it. Pure functions of an environment lookup so unit tests can pass a
// fake environment; process_env() reads the process environment. Thread-safe as long as
// nobody calls setenv concurrently.
//
// The rule for launched_under_mpi():
// - OMPI_COMM_WORLD_SIZE (Open MPI mpirun), PMI_SIZE (MPICH/Hydra, Intel MPI, srun --mpi=pmi2),
//   PMIX_RANK (srun --mpi=pmix, prterun, Open MPI 5) or MV2_COMM_WORLD_SIZE (MVAPICH): an MPI
//   launcher started us, whatever the world size.
// - Slurm alone is not enough: sbatch exports SLURM_NTASKS into the batch script, and
//   `srun hostname` sets SLURM_PROCID for processes that never call MPI. Only an srun step of
//   more than one task (SLURM_STEP_ID and SLURM_STEP_NUM_TASKS > 1) counts, because running N
//   copies of a single-process job would be wrong anyway; if MPI then sees a world of 1, the MPI
//   transport reports that srun lacks MPI support instead of running N "rank 0"s.
#pragma once

#include <functional>
#include <optional>

namespace pipeprune::launcher {

// Returns the value of a variable or nullptr, like std::getenv.
using EnvLookup = std::function<const char*(const char* name)>;

bool launched_under_mpi(const EnvLookup& env);
// The number of ranks the launcher started, when it says (OMPI/PMI/MVAPICH/Slurm step).
std::optional<int> launcher_world_size(const EnvLookup& env);
// This process's rank among those on its node, when the launcher says.
std::optional<int> local_rank(const EnvLookup& env);
// How many ranks the launcher started on this node, when it says (Open MPI, MPICH/Hydra,
// MVAPICH, or Slurm's --ntasks-per-node).
std::optional<int> local_size(const EnvLookup& env);

EnvLookup process_env();

}  // namespace pipeprune::launcher
