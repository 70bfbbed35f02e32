// Every NCCL and CUDA runtime call the NCCL backend makes, behind a small virtual interface.
//
// Private to dist/transport. The real implementation (cuda_nccl_api.cpp, built only with
// PIPEPRUNE_HAVE_NCCL) forwards one-to-one; unit tests substitute a gMock double so bootstrap,
// error and call-sequence paths run on machines without a GPU. The types here mirror NCCL's
// and CUDA's (values are static_assert-ed against <nccl.h>/<cuda_runtime.h> in the real
// implementation), so neither header is needed to compile or mock the interface.
// Buffers are byte buffers: the transport sends every dtype as ncclUint8.
// Thread-safety: as NCCL and CUDA themselves; the transport calls from one thread.
#pragma once

#include <cstddef>
#include <memory>

namespace pipeprune {

using NcclResult = int;    // ncclResult_t
using CudaError = int;     // cudaError_t
using NcclComm = void*;    // ncclComm_t
using CudaStream = void*;  // cudaStream_t
using CudaEvent = void*;   // cudaEvent_t

constexpr NcclResult kNcclSuccess = 0;
constexpr NcclResult kNcclUnhandledCudaError = 1;
constexpr NcclResult kNcclSystemError = 2;
constexpr NcclResult kNcclInternalError = 3;
constexpr NcclResult kNcclInvalidArgument = 4;
constexpr NcclResult kNcclInvalidUsage = 5;
constexpr NcclResult kNcclRemoteError = 6;
constexpr NcclResult kNcclInProgress = 7;
constexpr CudaError kCudaSuccess = 0;
constexpr CudaError kCudaErrorInsufficientDriver = 35;
constexpr CudaError kCudaErrorNoDevice = 100;

constexpr size_t kNcclUniqueIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES
struct NcclUniqueId {
  char internal[kNcclUniqueIdBytes];
};

class NcclApi {
 public:
  virtual ~NcclApi() = default;

  virtual const char* get_error_string(NcclResult result) = 0;
  virtual NcclResult get_unique_id(NcclUniqueId* id) = 0;
  virtual NcclResult comm_init_rank(NcclComm* comm, int n_ranks, const NcclUniqueId& id, int rank) = 0;
  virtual NcclResult comm_destroy(NcclComm comm) = 0;
  virtual NcclResult comm_abort(NcclComm comm) = 0;
  virtual NcclResult comm_get_async_error(NcclComm comm, NcclResult* async_error) = 0;
  virtual NcclResult send(const void* data, size_t bytes, int peer, NcclComm comm, CudaStream stream) = 0;
  virtual NcclResult recv(void* data, size_t bytes, int peer, NcclComm comm, CudaStream stream) = 0;
  virtual NcclResult broadcast(const void* send_data, void* recv_data, size_t bytes, int root,
                               NcclComm comm, CudaStream stream) = 0;
  virtual NcclResult all_gather(const void* send_data, void* recv_data, size_t bytes_per_rank,
                                NcclComm comm, CudaStream stream) = 0;
  virtual NcclResult group_start() = 0;
  virtual NcclResult group_end() = 0;

  virtual CudaError cuda_get_device_count(int* count) = 0;
  virtual CudaError cuda_set_device(int device) = 0;
  virtual CudaError cuda_stream_create(CudaStream* stream) = 0;
  virtual CudaError cuda_stream_synchronize(CudaStream stream) = 0;
  virtual CudaError cuda_stream_destroy(CudaStream stream) = 0;
  // An event without timing, recorded on LibTorch's stream and waited on by the NCCL stream.
  virtual CudaError cuda_event_create(CudaEvent* event) = 0;
  virtual CudaError cuda_event_record(CudaEvent event, CudaStream stream) = 0;
  virtual CudaError cuda_stream_wait_event(CudaStream stream, CudaEvent event) = 0;
  virtual CudaError cuda_event_destroy(CudaEvent event) = 0;
  // The stream LibTorch queues this thread's work for `device` on (its current stream); in a
  // build without a CUDA LibTorch, the legacy default stream (nullptr).
  virtual CudaStream compute_stream(int device) = 0;
  virtual const char* cuda_get_error_string(CudaError error) = 0;
};

// The real NCCL/CUDA runtime, or nullptr when this build has no NCCL (PIPEPRUNE_HAVE_NCCL unset).
std::shared_ptr<NcclApi> make_cuda_nccl_api();

}  // namespace pipeprune
