// The real NcclApi: one-to-one calls into libnccl and libcudart. Built only with NCCL.
#include "dist/transport/nccl_api.h"

#if defined(PIPEPRUNE_HAVE_NCCL)

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstring>

#include "dist/transport/torch_cuda_stream.h"

namespace pipeprune {
namespace {

static_assert(kNcclSuccess == ncclSuccess && kNcclUnhandledCudaError == ncclUnhandledCudaError &&
                  kNcclSystemError == ncclSystemError && kNcclInternalError == ncclInternalError &&
                  kNcclInvalidArgument == ncclInvalidArgument && kNcclInvalidUsage == ncclInvalidUsage &&
                  kNcclRemoteError == ncclRemoteError && kNcclInProgress == ncclInProgress,
              "NcclResult mirror out of date");
static_assert(kCudaSuccess == cudaSuccess && kCudaErrorInsufficientDriver == cudaErrorInsufficientDriver &&
                  kCudaErrorNoDevice == cudaErrorNoDevice,
              "CudaError mirror out of date");
static_assert(sizeof(NcclUniqueId) == sizeof(ncclUniqueId), "NcclUniqueId mirror out of date");

ncclComm_t to_nccl(NcclComm comm) { return static_cast<ncclComm_t>(comm); }
cudaStream_t to_cuda(CudaStream stream) { return static_cast<cudaStream_t>(stream); }

class CudaNcclApi final : public NcclApi {
 public:
  const char* get_error_string(NcclResult result) override {
    return ncclGetErrorString(static_cast<ncclResult_t>(result));
  }
  NcclResult get_unique_id(NcclUniqueId* id) override {
    ncclUniqueId raw;
    ncclResult_t result = ncclGetUniqueId(&raw);
    std::memcpy(id->internal, &raw, sizeof(raw));
    return result;
  }
  NcclResult comm_init_rank(NcclComm* comm, int n_ranks, const NcclUniqueId& id, int rank) override {
    ncclUniqueId raw;
    std::memcpy(&raw, id.internal, sizeof(raw));
    ncclComm_t created = nullptr;
    ncclResult_t result = ncclCommInitRank(&created, n_ranks, raw, rank);
    *comm = created;
    return result;
  }
  NcclResult comm_destroy(NcclComm comm) override { return ncclCommDestroy(to_nccl(comm)); }
  NcclResult comm_abort(NcclComm comm) override { return ncclCommAbort(to_nccl(comm)); }
  NcclResult comm_get_async_error(NcclComm comm, NcclResult* async_error) override {
    ncclResult_t raw = ncclSuccess;
    ncclResult_t result = ncclCommGetAsyncError(to_nccl(comm), &raw);
    *async_error = raw;
    return result;
  }
  NcclResult send(const void* data, size_t bytes, int peer, NcclComm comm, CudaStream stream) override {
    return ncclSend(data, bytes, ncclUint8, peer, to_nccl(comm), to_cuda(stream));
  }
  NcclResult recv(void* data, size_t bytes, int peer, NcclComm comm, CudaStream stream) override {
    return ncclRecv(data, bytes, ncclUint8, peer, to_nccl(comm), to_cuda(stream));
  }
  NcclResult broadcast(const void* send_data, void* recv_data, size_t bytes, int root, NcclComm comm,
                       CudaStream stream) override {
    return ncclBroadcast(send_data, recv_data, bytes, ncclUint8, root, to_nccl(comm), to_cuda(stream));
  }
  NcclResult all_gather(const void* send_data, void* recv_data, size_t bytes_per_rank, NcclComm comm,
                        CudaStream stream) override {
    return ncclAllGather(send_data, recv_data, bytes_per_rank, ncclUint8, to_nccl(comm), to_cuda(stream));
  }
  NcclResult group_start() override { return ncclGroupStart(); }
  NcclResult group_end() override { return ncclGroupEnd(); }

  CudaError cuda_get_device_count(int* count) override { return cudaGetDeviceCount(count); }
  CudaError cuda_set_device(int device) override { return cudaSetDevice(device); }
  CudaError cuda_stream_create(CudaStream* stream) override {
    cudaStream_t created = nullptr;
    // Non-blocking: no implicit ordering with the legacy default stream; the transport orders
    // every NCCL call after LibTorch's current stream with an event instead, whichever stream
    // that is.
    cudaError_t error = cudaStreamCreateWithFlags(&created, cudaStreamNonBlocking);
    *stream = created;
    return error;
  }
  CudaError cuda_stream_synchronize(CudaStream stream) override {
    return cudaStreamSynchronize(to_cuda(stream));
  }
  CudaError cuda_stream_destroy(CudaStream stream) override { return cudaStreamDestroy(to_cuda(stream)); }
  CudaError cuda_event_create(CudaEvent* event) override {
    cudaEvent_t created = nullptr;
    cudaError_t error = cudaEventCreateWithFlags(&created, cudaEventDisableTiming);
    *event = created;
    return error;
  }
  CudaError cuda_event_record(CudaEvent event, CudaStream stream) override {
    return cudaEventRecord(static_cast<cudaEvent_t>(event), to_cuda(stream));
  }
  CudaError cuda_stream_wait_event(CudaStream stream, CudaEvent event) override {
    return cudaStreamWaitEvent(to_cuda(stream), static_cast<cudaEvent_t>(event), 0);
  }
  CudaError cuda_event_destroy(CudaEvent event) override { return cudaEventDestroy(static_cast<cudaEvent_t>(event)); }
  CudaStream compute_stream(int device) override { return torch_current_cuda_stream(device); }
  const char* cuda_get_error_string(CudaError error) override {
    return cudaGetErrorString(static_cast<cudaError_t>(error));
  }
};

}  // namespace

std::shared_ptr<NcclApi> make_cuda_nccl_api() { return std::make_shared<CudaNcclApi>(); }

}  // namespace pipeprune

#else

namespace pipeprune {

std::shared_ptr<NcclApi> make_cuda_nccl_api() { return nullptr; }

}  // namespace pipeprune

#endif
