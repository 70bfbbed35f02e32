// NcclTransport: see nccl_transport.h for the division of labour with the bootstrap transport.
#include "dist/transport/nccl_transport.h"

#include <ATen/ATen.h>

#include <map>
#include <sstream>

#include "core/common/error.h"
#include "core/common/log.h"
#include "dist/transport/tensor_header.h"

namespace pipeprune {
namespace {

constexpr int64_t kNcclChunk = int64_t{1} << 30;  // unused by NCCL; keeps headers valid

// "ranks 0,2: reason; rank 1: other reason" from one entry per rank ("" = fine); "" if all fine.
std::string summarize_failures(const std::vector<std::string>& per_rank) {
  std::map<std::string, std::vector<int>> ranks_by_reason;
  for (size_t r = 0; r < per_rank.size(); ++r) {
    if (!per_rank[r].empty()) ranks_by_reason[per_rank[r]].push_back(static_cast<int>(r));
  }
  std::ostringstream out;
  for (const auto& [reason, ranks] : ranks_by_reason) {
    if (out.tellp() > 0) out << "; ";
    out << (ranks.size() == 1 ? "rank " : "ranks ");
    for (size_t i = 0; i < ranks.size(); ++i) out << (i ? "," : "") << ranks[i];
    out << ": " << reason;
  }
  return out.str();
}

// Every rank contributes its error ("" = none); every rank throws if any rank failed.
void agree_or_throw(Transport& bootstrap, const std::string& local_error, const std::string& what) {
  std::string failures = summarize_failures(bootstrap.all_gather_string(local_error));
  PIPEPRUNE_CHECK(failures.empty(), CommError,
                  "--transport nccl: " << what << " (" << failures << "); use --transport mpi");
}

std::string local_probe(NcclApi& api, const NcclSetup& setup, int* device) {
  int count = 0;
  CudaError error = api.cuda_get_device_count(&count);
  if (error != kCudaSuccess) {
    return std::string("cudaGetDeviceCount: ") + api.cuda_get_error_string(error);
  }
  if (count <= 0) return "no CUDA device";
  *device = setup.cuda_device >= 0 ? setup.cuda_device : setup.local_rank % count;
  if (*device >= count) {
    return "cuda:" + std::to_string(*device) + " requested but only " + std::to_string(count) +
           " device" + (count == 1 ? "" : "s");
  }
  return "";
}

class NcclTransport final : public Transport {
 public:
  NcclTransport(std::unique_ptr<Transport> bootstrap, std::shared_ptr<NcclApi> api, NcclComm comm, int device,
                CudaStream stream, CudaEvent compute_done, c10::Device buffer_device)
      : bootstrap_(std::move(bootstrap)), api_(std::move(api)), comm_(comm), device_(device), stream_(stream),
        compute_done_(compute_done), buffer_device_(buffer_device), rank_(bootstrap_->rank()),
        size_(bootstrap_->size()) {}

  ~NcclTransport() override {
    if (comm_ != nullptr) failed_ ? api_->comm_abort(comm_) : api_->comm_destroy(comm_);
    api_->cuda_event_destroy(compute_done_);
    api_->cuda_stream_destroy(stream_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* backend_name() const override { return "nccl"; }

  void send(const at::Tensor& tensor, int dst, const SendOptions& options) override {
    wire::check_peer("send", dst, rank_, size_);
    wire::check_tag(options.tag, rank_);
    at::Tensor buffer;
    auto header = header_or_failure(tensor, buffer, options.tag, dst, [&](const wire::TensorHeader& h) {
      bootstrap_->send(wire::header_to_tensor(h), dst, {options.tag});
    });
    if (header.nbytes == 0) return;
    after_compute("ncclSend to rank " + std::to_string(dst));
    check_nccl(api_->send(buffer.data_ptr(), header.nbytes, dst, comm_, stream_),
               "ncclSend to rank " + std::to_string(dst));
    synchronize("ncclSend to rank " + std::to_string(dst));
  }

  at::Tensor recv(int src, const RecvOptions& options) override {
    wire::check_peer("recv", src, rank_, size_);
    wire::check_tag(options.tag, rank_);
    RecvOptions header_options;
    header_options.tag = options.tag;
    auto header = wire::header_from_tensor(bootstrap_->recv(src, header_options), rank_, src);
    at::Tensor out = allocate(header);
    // Received even when unexpected, so the sender's ncclSend completes.
    if (header.nbytes > 0) {
      after_compute("ncclRecv from rank " + std::to_string(src));
      check_nccl(api_->recv(out.data_ptr(), header.nbytes, src, comm_, stream_),
                 "ncclRecv from rank " + std::to_string(src));
      synchronize("ncclRecv from rank " + std::to_string(src));
    }
    wire::check_expectation(header, options.expect, rank_, src);
    return out.to(options.device);
  }

  at::Tensor broadcast(const at::Tensor& tensor, const BroadcastOptions& options) override {
    int root = options.root;
    wire::check_root(root, rank_, size_);
    at::Tensor buffer;
    wire::TensorHeader header;
    if (rank_ == root) {
      header = header_or_failure(tensor, buffer, 0, -1, [&](const wire::TensorHeader& h) {
        bootstrap_->broadcast(wire::header_to_tensor(h), {root});
      });
    } else {
      header = wire::header_from_tensor(bootstrap_->broadcast(at::Tensor(), {root}), rank_, root);
      buffer = allocate(header);
    }
    if (header.nbytes > 0) {
      after_compute("ncclBroadcast from rank " + std::to_string(root));
      check_nccl(api_->broadcast(buffer.data_ptr(), buffer.data_ptr(), header.nbytes, root, comm_, stream_),
                 "ncclBroadcast from rank " + std::to_string(root));
      synchronize("ncclBroadcast from rank " + std::to_string(root));
    }
    return rank_ == root ? tensor : buffer;
  }

  std::vector<at::Tensor> all_gather(const at::Tensor& tensor) override {
    at::Tensor mine;
    std::vector<at::Tensor> header_bytes;
    header_or_failure(tensor, mine, 0, -1, [&](const wire::TensorHeader& h) {
      header_bytes = bootstrap_->all_gather(wire::header_to_tensor(h));
    });
    std::vector<wire::TensorHeader> headers;
    for (int r = 0; r < size_; ++r) headers.push_back(wire::header_from_tensor(header_bytes[r], rank_, r));
    wire::check_same_dtype(headers, rank_);
    bool same_size = true;
    for (const auto& h : headers) same_size = same_size && h.nbytes == headers[0].nbytes;
    return same_size ? gather_equal(mine, headers) : gather_unequal(mine, headers);
  }

  // NCCL work is complete when each call returns, so ordering on the bootstrap is enough.
  void barrier() override { bootstrap_->barrier(); }

  std::string broadcast_string(const std::string& value, int root) override {
    return bootstrap_->broadcast_string(value, root);
  }
  std::vector<std::string> all_gather_string(const std::string& value) override {
    return bootstrap_->all_gather_string(value);
  }

  void abort(int exit_code) override {
    if (comm_ != nullptr) api_->comm_abort(comm_);  // unblocks NCCL kernels waiting on dead peers
    comm_ = nullptr;
    bootstrap_->abort(exit_code);
  }

 private:
  template <typename Exchange>
  wire::TensorHeader header_or_failure(const at::Tensor& tensor, at::Tensor& buffer, int tag, int peer,
                                       Exchange&& exchange) {
    wire::TensorHeader header;
    try {
      PIPEPRUNE_CHECK(tensor.defined(), CommError, "rank " << rank_ << ": cannot send an undefined tensor");
      header = wire::make_header(tensor, tag, kNcclChunk, rank_, peer);
      buffer = tensor.to(buffer_device_).contiguous();
    } catch (...) {
      exchange(wire::failed_header());
      throw;
    }
    exchange(header);
    return header;
  }

  at::Tensor allocate(const wire::TensorHeader& header) {
    return at::empty(wire::header_shape(header),
                     at::TensorOptions().dtype(wire::header_dtype(header)).device(buffer_device_));
  }

  std::vector<at::Tensor> gather_equal(const at::Tensor& mine, const std::vector<wire::TensorHeader>& headers) {
    const auto& h = headers[rank_];
    at::Tensor all = at::empty({size_, mine.numel()}, at::TensorOptions().dtype(mine.scalar_type()).device(buffer_device_));
    if (h.nbytes > 0) {
      after_compute("ncclAllGather");
      check_nccl(api_->all_gather(mine.data_ptr(), all.data_ptr(), h.nbytes, comm_, stream_), "ncclAllGather");
      synchronize("ncclAllGather");
    }
    std::vector<at::Tensor> result;
    for (int r = 0; r < size_; ++r) result.push_back(all[r].view(wire::header_shape(headers[r])));
    return result;
  }

  // Shapes differ: a group of point-to-point transfers, the usual all-gather-v over NCCL.
  std::vector<at::Tensor> gather_unequal(const at::Tensor& mine, const std::vector<wire::TensorHeader>& headers) {
    std::vector<at::Tensor> result(size_);
    for (int r = 0; r < size_; ++r) {
      if (r != rank_) result[r] = allocate(headers[r]);
    }
    after_compute("all_gather");
    check_nccl(api_->group_start(), "ncclGroupStart");
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      if (headers[rank_].nbytes > 0) {
        check_nccl(api_->send(mine.data_ptr(), headers[rank_].nbytes, r, comm_, stream_),
                   "ncclSend to rank " + std::to_string(r) + " in all_gather");
      }
      if (headers[r].nbytes > 0) {
        check_nccl(api_->recv(result[r].data_ptr(), headers[r].nbytes, r, comm_, stream_),
                   "ncclRecv from rank " + std::to_string(r) + " in all_gather");
      }
    }
    check_nccl(api_->group_end(), "ncclGroupEnd");
    synchronize("all_gather");
    result[rank_] = mine.clone();
    return result;
  }

  void check_nccl(NcclResult result, const std::string& what) {
    if (result == kNcclSuccess) return;
    failed_ = true;
    PIPEPRUNE_FAIL(CommError, "rank " << rank_ << ": " << what << " failed: " << api_->get_error_string(result)
                                      << "; a peer probably failed (see its log; NCCL_DEBUG=INFO says more)");
  }

  // Makes the NCCL stream wait for everything LibTorch has queued so far on its current stream:
  // the copy or kernel that produced the tensor being sent, the allocation received into (whose
  // memory an earlier kernel on that stream may still be using).
  void after_compute(const std::string& what) {
    CudaError error = api_->cuda_event_record(compute_done_, api_->compute_stream(device_));
    const char* call = "cudaEventRecord";
    if (error == kCudaSuccess) {
      error = api_->cuda_stream_wait_event(stream_, compute_done_);
      call = "cudaStreamWaitEvent";
    }
    if (error == kCudaSuccess) return;
    failed_ = true;
    PIPEPRUNE_FAIL(CommError, "rank " << rank_ << ": " << what << ": " << call << " (ordering NCCL after LibTorch's "
                                      << "stream) failed: " << api_->cuda_get_error_string(error));
  }

  // Waits for this rank's NCCL work; a failure may be NCCL's asynchronous error.
  void synchronize(const std::string& what) {
    CudaError error = api_->cuda_stream_synchronize(stream_);
    if (error == kCudaSuccess) return;
    NcclResult async_error = kNcclSuccess;
    api_->comm_get_async_error(comm_, &async_error);
    failed_ = true;
    PIPEPRUNE_FAIL(CommError, "rank " << rank_ << ": " << what << " failed: " << api_->cuda_get_error_string(error)
                                      << (async_error != kNcclSuccess
                                              ? std::string(" (NCCL: ") + api_->get_error_string(async_error) + ")"
                                              : std::string()));
  }

  std::unique_ptr<Transport> bootstrap_;
  std::shared_ptr<NcclApi> api_;
  NcclComm comm_;
  int device_;
  CudaStream stream_;
  CudaEvent compute_done_;
  c10::Device buffer_device_;
  int rank_;
  int size_;
  bool failed_ = false;
};

}  // namespace

std::string probe_nccl(Transport& bootstrap, NcclApi& api, const NcclSetup& setup) {
  int device = -1;
  return summarize_failures(bootstrap.all_gather_string(local_probe(api, setup, &device)));
}

std::unique_ptr<Transport> create_nccl_transport(std::unique_ptr<Transport> bootstrap,
                                                 std::shared_ptr<NcclApi> api, const NcclSetup& setup) {
  PIPEPRUNE_CHECK(bootstrap != nullptr && api != nullptr, CommError,
                  "--transport nccl: no bootstrap transport or NCCL API (a bug)");
  Transport& boot = *bootstrap;
  int device = -1;
  agree_or_throw(boot, local_probe(*api, setup, &device), "no usable GPU");

  std::string error;
  CudaStream stream = nullptr;
  CudaEvent compute_done = nullptr;
  NcclUniqueId id{};
  if (CudaError e = api->cuda_set_device(device); e != kCudaSuccess) {
    error = "cudaSetDevice(" + std::to_string(device) + "): " + api->cuda_get_error_string(e);
  } else if (CudaError e = api->cuda_stream_create(&stream); e != kCudaSuccess) {
    error = std::string("cudaStreamCreate: ") + api->cuda_get_error_string(e);
  } else if (CudaError e = api->cuda_event_create(&compute_done); e != kCudaSuccess) {
    error = std::string("cudaEventCreate: ") + api->cuda_get_error_string(e);
  } else if (boot.rank() == 0) {
    if (NcclResult r = api->get_unique_id(&id); r != kNcclSuccess) {
      error = std::string("ncclGetUniqueId: ") + api->get_error_string(r);
    }
  }
  auto destroy_stream = [&] {
    if (compute_done != nullptr) api->cuda_event_destroy(compute_done);
    if (stream != nullptr) api->cuda_stream_destroy(stream);
  };
  try {
    agree_or_throw(boot, error, "cannot set up the GPU");
  } catch (...) {
    destroy_stream();
    throw;
  }

  std::string id_bytes = boot.broadcast_string(std::string(id.internal, sizeof(id.internal)), 0);
  PIPEPRUNE_CHECK(id_bytes.size() == sizeof(id.internal), CommError,
                  "rank " << boot.rank() << ": NCCL unique id from rank 0 has " << id_bytes.size()
                          << " bytes, expected " << sizeof(id.internal));
  std::copy(id_bytes.begin(), id_bytes.end(), id.internal);

  NcclComm comm = nullptr;
  NcclResult init = api->comm_init_rank(&comm, boot.size(), id, boot.rank());
  error = init == kNcclSuccess ? "" : std::string("ncclCommInitRank: ") + api->get_error_string(init);
  try {
    agree_or_throw(boot, error, "cannot start NCCL");
  } catch (...) {
    if (comm != nullptr) api->comm_abort(comm);
    destroy_stream();
    throw;
  }
  c10::Device buffer_device = setup.buffer_device.value_or(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(device)));
  log::info("NCCL transport: {} ranks, this rank on cuda:{}", boot.size(), device);
  return std::make_unique<NcclTransport>(std::move(bootstrap), std::move(api), comm, device, stream, compute_done,
                                         buffer_device);
}

}  // namespace pipeprune
