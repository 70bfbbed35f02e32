// The NCCL backend: NCCL carries tensors between CUDA devices; a bootstrap transport (MPI in
// production, a local world in tests) carries everything else.
//
// Private to dist/transport (no <nccl.h> here: every call goes through NcclApi). As in llm.c's
// zero.cuh, the bootstrap only starts NCCL (rank 0's unique id is broadcast over it) and then
// carries the small things: tensor headers, strings, barriers and abort. Headers go over the
// bootstrap rather than as an NCCL message because the receiver must know the size before it
// can allocate the device buffer; a header read back from the device would cost a copy and a
// stream synchronisation per message, and over the bootstrap the checks and error messages are
// exactly those of the MPI backend. Each NCCL call runs on the transport's own (non-blocking)
// stream, first made to wait, through an event, for the work LibTorch has queued on its current
// stream (the tensor being sent, the allocation being received into), and is synchronised
// before returning, so calls block like the other backends and LibTorch's later work needs no
// event.
// Point-to-point order: NCCL has no tags; data pairs up in program order per peer, and the tag
// matches the header on the bootstrap. Every collective here is collective over all ranks.
#pragma once

#include <c10/core/Device.h>

#include <memory>
#include <optional>
#include <string>

#include "dist/transport/nccl_api.h"
#include "dist/transport/transport.h"

namespace pipeprune {

struct NcclSetup {
  // The CUDA device this rank drives; -1 picks local_rank modulo the number of devices.
  int cuda_device = -1;
  int local_rank = 0;
  // Where buffers handed to NCCL are allocated: cuda:<device> when unset. Tests with a mock
  // NcclApi set the CPU, since a CPU-only LibTorch cannot allocate CUDA memory.
  std::optional<c10::Device> buffer_device;
};

// Collective over `bootstrap`, no side effects: "" when every rank can drive its device, else
// one line saying which ranks cannot and why ("ranks 0,1: cudaGetDeviceCount: ...").
std::string probe_nccl(Transport& bootstrap, NcclApi& api, const NcclSetup& setup);

// Collective over `bootstrap`: probes, selects the device, creates the stream and event, broadcasts rank
// 0's unique id and initialises the communicator. When any rank fails, every rank throws a
// CommError naming the failing ranks and NCCL's or CUDA's own error string, e.g.
// "--transport nccl: no usable GPU (ranks 0,1: cudaGetDeviceCount: ...); use --transport mpi".
std::unique_ptr<Transport> create_nccl_transport(std::unique_ptr<Transport> bootstrap,
                                                 std::shared_ptr<NcclApi> api, const NcclSetup& setup);

}  // namespace pipeprune
