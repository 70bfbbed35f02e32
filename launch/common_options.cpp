#include "launch/common_options.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <cmath>
#include <thread>

#include "core/common/error.h"
#include "core/common/blas_threads.h"
#include "core/common/log.h"
#include "dist/budget.h"
#include "dist/transport/launcher_env.h"

namespace pipeprune {
namespace {

std::unique_ptr<Transport> g_transport;

// A GPU index this node does not have would fail later as "invalid device ordinal" at the first
// tensor, or as a budget that cannot be read; say which rank and what to pass instead.
c10::Device checked_cuda(const std::string& name, c10::Device device, int local_rank, bool planning_only) {
  if (planning_only) return device;
  const auto gpus = static_cast<int64_t>(at::getNumGPUs());
  PIPEPRUNE_CHECK(device.index() < gpus, ConfigError,
                  "--device " << name << ": " << device << " does not exist, this node shows " << gpus
                              << " GPU(s)" << (name == "cuda:" + std::to_string(device.index()) ? "" : fmt::format(
                                     " and this rank is its node-local rank {}", local_rank))
                              << "; run at most " << gpus << " rank(s) per node with --device cuda, or name one "
                              << "with --device cuda:N (N < " << gpus << ")");
  return device;
}

c10::Device resolve_device(const std::string& name, int local_rank, bool planning_only) {
  const bool cuda_available = at::hasCUDA() || planning_only;
  if (name == "cpu") return c10::Device(c10::kCPU);
  if (name == "auto") {
    if (!cuda_available) return c10::Device(c10::kCPU);
    return checked_cuda(name, c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local_rank)), local_rank,
                        planning_only);
  }
  if (name.rfind("cuda", 0) == 0) {
    PIPEPRUNE_CHECK(cuda_available, ConfigError,
                    "--device " << name << ": this LibTorch build has no CUDA support or no GPU is visible; "
                                           "use --device cpu");
    const c10::Device device =
        name == "cuda" ? c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local_rank)) : c10::Device(name);
    return checked_cuda(name, device, local_rank, planning_only);
  }
  PIPEPRUNE_FAIL(ConfigError, "--device: unknown device '" << name << "' (use cpu, cuda, cuda:N or auto)");
}

// Whether this LibTorch multiplies fp16 matrices on the CPU (a 1x1 product tells).
bool cpu_has_half_matmul() {
  try {
    at::mm(at::ones({1, 1}, at::kHalf), at::ones({1, 1}, at::kHalf));
    return true;
  } catch (const c10::Error&) {
    return false;
  }
}

c10::ScalarType resolve_compute_dtype(const std::string& name) {
  if (name == "fp32" || name == "float32") return c10::ScalarType::Float;
  if (name == "bf16" || name == "bfloat16") return c10::ScalarType::BFloat16;
  if (name == "fp16" || name == "float16") return c10::ScalarType::Half;
  PIPEPRUNE_FAIL(ConfigError, "--compute-dtype: unknown dtype '" << name << "' (use fp32, bf16 or fp16)");
}

}  // namespace

void add_common_options(CLI::App& command, CommonOptions& options) {
  command.add_option("--device", options.device, "cpu, cuda, cuda:N or auto (cuda when available)")
      ->capture_default_str();
  command.add_option("--compute-dtype", options.compute_dtype,
                     "dtype of the forward passes: fp32 (default; fp16 matmul does not exist on CPU) or bf16")
      ->capture_default_str();
  command.add_option("--transport", options.transport, "auto, local, mpi or nccl")->capture_default_str();
  command.add_option("--max-memory", options.max_memory,
                     "memory budget, e.g. cuda=70GiB,cpu=100GiB or per rank 0:cuda=40GiB,1:cpu=8GiB");
  command.add_option("--threads", options.threads, "compute threads per rank (default: this rank's share of the cores)");
  command.add_flag("--quiet,-q", options.quiet, "print warnings and errors only");
  command.add_flag("--verbose", options.verbose, "print info lines from every rank and debug lines");
}

RunEnvironment make_environment(const CommonOptions& options) {
  RunEnvironment env;
  log::set_quiet(options.quiet);
  log::set_debug(options.verbose);
  log::set_all_ranks_verbose(options.verbose);
  const launcher::EnvLookup env_vars = launcher::process_env();
  const int local_rank = launcher::local_rank(env_vars).value_or(0);
  const int local_size = launcher::local_size(env_vars).value_or(1);
  env.device = resolve_device(options.device, local_rank, options.planning_only);
  env.compute_dtype = resolve_compute_dtype(options.compute_dtype);
  // Debian's LibTorch 1.13 has no fp16 matmul on the CPU (newer ones do): refuse here rather
  // than fail inside the first forward with LibTorch's "not implemented for 'Half'".
  PIPEPRUNE_CHECK(!(env.device.is_cpu() && env.compute_dtype == c10::ScalarType::Half && !options.planning_only) ||
                      cpu_has_half_matmul(),
                  ConfigError,
                  "--compute-dtype fp16 needs a CUDA device here: this LibTorch has no fp16 matmul on the CPU; use bf16 "
                  "or fp32 on the CPU");
  TransportOptions transport_options;
  transport_options.kind = parse_transport_kind(options.transport);
  // A plan made for GPUs on a machine without one exchanges its few strings over the CPU.
  transport_options.device = options.planning_only && !at::hasCUDA() ? c10::Device(c10::kCPU) : env.device;
  if (!g_transport) g_transport = create_transport(transport_options);
  env.transport = g_transport.get();
  log::set_rank(env.transport->rank(), env.transport->size());
  PIPEPRUNE_CHECK(options.threads >= 0, ConfigError, "--threads must be >= 0");
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // Default: OMP_NUM_THREADS when the environment sets it (as schedulers and our tests do),
  // else this rank's share of the cores.
  const char* omp_threads = env_vars("OMP_NUM_THREADS");
  int threads = std::max(1, cores / std::max(1, local_size));
  if (omp_threads != nullptr && std::atoi(omp_threads) > 0) threads = std::atoi(omp_threads);
  if (options.threads > 0) threads = options.threads;
  at::set_num_threads(threads);
  set_blas_threads(threads);
  if (!options.max_memory.empty()) {
    env.budget_bytes = budget_from_spec(options.max_memory, env.transport->rank(), env.device.type());
    if (env.device.is_cuda()) env.host_budget_bytes = budget_from_spec(options.max_memory, env.transport->rank(), c10::kCPU);
  }
  return env;
}

Transport* current_transport() { return g_transport.get(); }

void release_environment() { g_transport.reset(); }

std::optional<double> parse_number(const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (used != text.size() || !std::isfinite(value)) return std::nullopt;
  return value;
}

}  // namespace pipeprune
