// The transport factory and the helpers every backend shares.
#include "dist/transport/transport.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "core/common/error.h"
#include "core/common/log.h"
#include "dist/transport/launcher_env.h"
#include "dist/transport/mpi_transport.h"
#include "dist/transport/nccl_api.h"
#include "dist/transport/nccl_transport.h"

namespace pipeprune {
namespace {

NcclSetup nccl_setup(const TransportOptions& options) {
  NcclSetup setup;
  if (options.device.is_cuda() && options.device.has_index()) setup.cuda_device = options.device.index();
  setup.local_rank = launcher::local_rank(launcher::process_env()).value_or(0);
  return setup;
}

std::unique_ptr<Transport> create_local(const TransportOptions& options) {
  auto launched = launcher::launcher_world_size(launcher::process_env());
  PIPEPRUNE_CHECK(!launched || *launched <= 1 || options.kind == TransportKind::kAuto, ConfigError,
                  "--transport local: the launcher started " << *launched
                      << " ranks, which would each run alone; use --transport mpi or auto");
  return std::move(create_local_world(1).front());
}

std::unique_ptr<Transport> create_nccl(const TransportOptions& options) {
  std::shared_ptr<NcclApi> api = make_cuda_nccl_api();
  PIPEPRUNE_CHECK(api != nullptr, CommError,
                  "--transport nccl: this build has no NCCL (configure with -DPIPEPRUNE_WITH_NCCL=ON "
                  "where the CUDA toolkit has NCCL); use --transport mpi");
  auto bootstrap = create_mpi_transport();
  NcclSetup setup = nccl_setup(options);
  std::string reason = probe_nccl(*bootstrap, *api, setup);
  PIPEPRUNE_CHECK(reason.empty(), CommError,
                  "--transport nccl: no usable GPU (" << reason << "); use --transport mpi");
  PIPEPRUNE_CHECK(options.device.is_cuda(), ConfigError,
                  "--transport nccl carries CUDA tensors but the device is " << options.device.str()
                                                                             << "; use --device cuda or --transport mpi");
  return create_nccl_transport(std::move(bootstrap), std::move(api), setup);
}

std::unique_ptr<Transport> create_auto(const TransportOptions& options) {
  if (!launched_under_mpi()) return create_local(options);
  auto mpi = create_mpi_transport();
  if (!options.device.is_cuda()) return mpi;
  std::shared_ptr<NcclApi> api = make_cuda_nccl_api();
  if (api == nullptr) {
    log::info("transport auto: this build has no NCCL; CUDA tensors go over MPI through host memory");
    return mpi;
  }
  NcclSetup setup = nccl_setup(options);
  std::string reason = probe_nccl(*mpi, *api, setup);
  if (!reason.empty()) {
    log::info("transport auto: NCCL not usable ({}); using MPI", reason);
    return mpi;
  }
  return create_nccl_transport(std::move(mpi), std::move(api), setup);
}

}  // namespace

std::vector<double> Transport::all_gather_double(double value) {
  std::vector<at::Tensor> gathered = all_gather(at::full({1}, value, at::kDouble));
  std::vector<double> values;
  values.reserve(gathered.size());
  for (const at::Tensor& t : gathered) values.push_back(t.to(at::kCPU).item<double>());
  return values;
}

void Transport::reduce_sum_into(at::Tensor& accumulator, const at::Tensor& contribution, const ReduceOptions& options) {
  const int contributors = options.contributors < 0 ? size() : std::min(options.contributors, size());
  const bool contributes = rank() < contributors;
  PIPEPRUNE_CHECK(contribution.defined() == contributes, CommError,
                  "rank " << rank() << ": reduce_sum_into with " << contributors << " contributors "
                          << (contributes ? "needs" : "takes no") << " contribution from this rank");
  if (rank() != options.root) {
    if (contributes) send(contribution, options.root, SendOptions{kReduceTag});
    return;
  }
  PIPEPRUNE_CHECK(accumulator.defined(), CommError, "rank " << rank() << ": reduce_sum_into needs an accumulator on the root");
  RecvOptions expect;
  expect.tag = kReduceTag;
  expect.expect.dtype = accumulator.scalar_type();
  expect.expect.shape = accumulator.sizes().vec();
  expect.device = accumulator.device();
  for (int r = 0; r < contributors; ++r) {
    if (r == rank()) {
      PIPEPRUNE_CHECK(contribution.sizes() == accumulator.sizes() && contribution.scalar_type() == accumulator.scalar_type(),
                      CommError,
                      "rank " << rank() << ": reduce_sum_into contribution " << contribution.sizes()
                              << " does not match the accumulator " << accumulator.sizes());
      accumulator.add_(contribution.to(accumulator.device()));
    } else {
      accumulator.add_(recv(r, expect));
    }
  }
}

bool Transport::all_agree(bool ok) {
  for (double value : all_gather_double(ok ? 1.0 : 0.0)) {
    if (value == 0.0) return false;
  }
  return true;
}

TransportKind parse_transport_kind(const std::string& name) {
  if (name == "auto") return TransportKind::kAuto;
  if (name == "local") return TransportKind::kLocal;
  if (name == "mpi") return TransportKind::kMpi;
  if (name == "nccl") return TransportKind::kNccl;
  PIPEPRUNE_FAIL(ConfigError, "--transport " << name << ": unknown transport; use auto, local, mpi or nccl");
}

std::unique_ptr<Transport> create_transport(const TransportOptions& options) {
  std::unique_ptr<Transport> transport;
  switch (options.kind) {
    case TransportKind::kLocal: transport = create_local(options); break;
    case TransportKind::kMpi: transport = create_mpi_transport(); break;
    case TransportKind::kNccl: transport = create_nccl(options); break;
    case TransportKind::kAuto: transport = create_auto(options); break;
  }
  log::debug("transport: {} with {} rank(s)", transport->backend_name(), transport->size());
  return transport;
}

}  // namespace pipeprune
