// Detecting an MPI launch from the environment (rule in dist/transport/launcher_env.h).
#include "dist/transport/launcher_env.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace pipeprune::launcher {
namespace {

EnvLookup fake_env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

TEST(LauncherEnv, EmptyEnvironment_NotUnderMpi) {
  EXPECT_FALSE(launched_under_mpi(fake_env({})));
  EXPECT_FALSE(launcher_world_size(fake_env({})));
  EXPECT_FALSE(local_rank(fake_env({})));
}

TEST(LauncherEnv, MpiLauncherVariables_UnderMpiEvenWithOneRank) {
  EXPECT_TRUE(launched_under_mpi(fake_env({{"OMPI_COMM_WORLD_SIZE", "1"}})));
  EXPECT_TRUE(launched_under_mpi(fake_env({{"PMI_SIZE", "4"}})));
  EXPECT_TRUE(launched_under_mpi(fake_env({{"PMIX_RANK", "0"}})));
  EXPECT_TRUE(launched_under_mpi(fake_env({{"MV2_COMM_WORLD_SIZE", "2"}})));
  EXPECT_EQ(launcher_world_size(fake_env({{"OMPI_COMM_WORLD_SIZE", "3"}})), 3);
  EXPECT_EQ(launcher_world_size(fake_env({{"PMI_SIZE", "5"}})), 5);
}

TEST(LauncherEnv, SlurmBatchScriptOrSingleTaskStep_NotUnderMpi) {
  // sbatch exports job-level variables into the batch script; no step variables.
  EXPECT_FALSE(launched_under_mpi(fake_env({{"SLURM_JOB_ID", "12"}, {"SLURM_NTASKS", "8"}, {"SLURM_PROCID", "0"}})));
  // `srun -n 1 pipeprune ...` without PMI: one task, runs alone.
  EXPECT_FALSE(launched_under_mpi(
      fake_env({{"SLURM_JOB_ID", "12"}, {"SLURM_STEP_ID", "0"}, {"SLURM_STEP_NUM_TASKS", "1"}})));
}

TEST(LauncherEnv, SlurmStepOfSeveralTasks_UnderMpiWithItsSize) {
  auto env = fake_env({{"SLURM_STEP_ID", "3"}, {"SLURM_STEP_NUM_TASKS", "4"}, {"SLURM_LOCALID", "2"}});
  EXPECT_TRUE(launched_under_mpi(env));
  EXPECT_EQ(launcher_world_size(env), 4);
  EXPECT_EQ(local_rank(env), 2);
}

TEST(LauncherEnv, EmptyOrMalformedValues_Ignored) {
  EXPECT_FALSE(launched_under_mpi(fake_env({{"OMPI_COMM_WORLD_SIZE", ""}})));
  EXPECT_FALSE(launcher_world_size(fake_env({{"OMPI_COMM_WORLD_SIZE", "two"}})));
  EXPECT_FALSE(launcher_world_size(fake_env({{"PMI_SIZE", "-3"}})));
}

TEST(LauncherEnv, LocalSize_FromTheLauncherOrAbsent) {
  EXPECT_FALSE(local_size(fake_env({})));
  EXPECT_EQ(local_size(fake_env({{"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}, {"SLURM_NTASKS_PER_NODE", "8"}})), 4);
  EXPECT_EQ(local_size(fake_env({{"MPI_LOCALNRANKS", "2"}})), 2);
  EXPECT_EQ(local_size(fake_env({{"SLURM_NTASKS_PER_NODE", "8"}})), 8);
  EXPECT_FALSE(local_size(fake_env({{"OMPI_COMM_WORLD_LOCAL_SIZE", "0"}})));
}

TEST(LauncherEnv, LocalRank_OpenMpiFirst) {
  EXPECT_EQ(local_rank(fake_env({{"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"SLURM_LOCALID", "5"}})), 1);
  EXPECT_EQ(local_rank(fake_env({{"MPI_LOCALRANKID", "3"}})), 3);
}

}  // namespace
}  // namespace pipeprune::launcher
