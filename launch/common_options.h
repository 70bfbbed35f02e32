// Options every subcommand shares (device, threads, transport, memory, verbosity) and how they
// turn into the objects the jobs need.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "dist/transport/transport.h"

namespace pipeprune {

struct CommonOptions {
  std::string device = "cpu";
  std::string compute_dtype = "fp32";
  std::string transport = "auto";
  std::string max_memory;
  int threads = 0;  // 0: every core of this rank's share
  bool quiet = false;
  bool verbose = false;
  // `plan`: nothing goes to the device, so `--device cuda` names the GPU being planned for and
  // needs none here (its size then comes from --max-memory cuda=SIZE).
  bool planning_only = false;
};

void add_common_options(CLI::App& command, CommonOptions& options);

// Everything a job needs from the common options, resolved for this rank.
struct RunEnvironment {
  Transport* transport = nullptr;  // owned by this module until release_environment()
  c10::Device device = c10::Device(c10::kCPU);
  c10::ScalarType compute_dtype = c10::ScalarType::Float;
  std::optional<int64_t> budget_bytes;
  // A GPU rank's host RAM budget (--max-memory cpu=...); unset: its share of the host's free RAM.
  std::optional<int64_t> host_budget_bytes;
};

// Creates the transport (MPI when launched under mpirun/srun), sets the log rank, threads,
// device and budget. ConfigError naming the flag on a bad value.
RunEnvironment make_environment(const CommonOptions& options);

// One finite number written out in full ("0.6", "1e-3"), as the list options (--weights,
// --layer-sparsity) and config tables read it; nullopt for anything else ("", "0.6,0.4",
// "true", "nan").
std::optional<double> parse_number(const std::string& text);

// The transport of the running job, for main()'s error handler (null before it exists). It
// outlives the command that created it, so an exception unwinding the command can still abort
// the job through it.
Transport* current_transport();
// Destroys the transport (finalizing MPI) after a successful command.
void release_environment();

}  // namespace pipeprune
