// MpiTransport: tensors as a fixed header message plus payload chunks, over MPI.
//
// Point-to-point: header and chunks go with the user's tag to the same peer on the same
// communicator, so MPI's non-overtaking rule keeps them in order. Collectives exchange headers
// first (MPI_Bcast / MPI_Allgather), then payloads by MPI_Bcast from each owner in turn; that
// costs one round per rank in all_gather, which only carries small tensors (budgets, stats).
// Errors come back as return codes (MPI_ERRORS_RETURN) and become CommErrors with MPI's text.
#include "dist/transport/mpi_transport.h"

#include <ATen/ATen.h>
#include <mpi.h>

#include <climits>
#include <cstdlib>

#include "core/common/error.h"
#include "core/common/log.h"
#include "dist/transport/launcher_env.h"
#include "dist/transport/tensor_header.h"

namespace pipeprune {
namespace {

constexpr int kHeaderBytes = static_cast<int>(sizeof(wire::TensorHeader));
// Strings are split at this size on every rank (it must not depend on a rank's options).
constexpr int64_t kStringChunk = int64_t{1} << 30;

void check_mpi(int rc, int rank, const std::string& what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  if (MPI_Error_string(rc, text, &length) != MPI_SUCCESS) length = 0;
  PIPEPRUNE_FAIL(CommError, "rank " << rank << ": " << what << " failed: "
                                    << (length ? std::string(text, length) : "error " + std::to_string(rc))
                                    << "; a peer probably failed (see its log)");
}

void finalize_mpi_at_exit() {
  int finalized = 1;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

// Initialises MPI once per process; finalised at exit only when we initialised it.
void ensure_mpi() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), 0, "MPI_Init_thread");
    std::atexit(finalize_mpi_at_exit);
    if (provided < MPI_THREAD_FUNNELED) {
      log::warn("MPI provides thread level {} < MPI_THREAD_FUNNELED; pipeprune calls MPI from "
                "its main thread only, which should still work",
                provided);
    }
  }
  int finalized = 0;
  MPI_Finalized(&finalized);
  PIPEPRUNE_CHECK(!finalized, CommError,
                  "MPI transport: MPI was already finalised; create transports before exit starts");
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

class MpiTransport final : public Transport {
 public:
  explicit MpiTransport(const MpiTransportOptions& options) : chunk_bytes_(options.chunk_bytes) {
    check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), 0, "MPI_Comm_dup(MPI_COMM_WORLD)");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    void* tag_ub = nullptr;
    int found = 0;
    MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &tag_ub, &found);
    if (found) max_tag_ = *static_cast<int*>(tag_ub);
  }

  ~MpiTransport() override {
    int finalized = 1;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* backend_name() const override { return "mpi"; }

  void send(const at::Tensor& tensor, int dst, const SendOptions& options) override {
    wire::check_peer("send", dst, rank_, size_);
    check_user_tag(options.tag);
    at::Tensor host;
    wire::TensorHeader header = header_or_failure(tensor, host, options.tag, dst, [&](auto& h) {
      check_mpi(MPI_Send(&h, kHeaderBytes, MPI_BYTE, dst, options.tag, comm_), rank_,
                "MPI_Send of a tensor header to rank " + std::to_string(dst));
    });
    char* data = static_cast<char*>(host.data_ptr());
    for_each_chunk(header, [&](int64_t offset, int count) {
      check_mpi(MPI_Send(data + offset, count, MPI_BYTE, dst, options.tag, comm_), rank_,
                "MPI_Send of " + wire::describe(host.scalar_type(), host.sizes().vec()) + " to rank " +
                    std::to_string(dst));
    });
  }

  at::Tensor recv(int src, const RecvOptions& options) override {
    wire::check_peer("recv", src, rank_, size_);
    check_user_tag(options.tag);
    wire::TensorHeader header;
    MPI_Status status;
    check_mpi(MPI_Recv(&header, kHeaderBytes, MPI_BYTE, src, options.tag, comm_, &status), rank_,
              "MPI_Recv of a tensor header from rank " + std::to_string(src));
    int count = 0;
    MPI_Get_count(&status, MPI_BYTE, &count);
    PIPEPRUNE_CHECK(count == kHeaderBytes, CommError,
                    "rank " << rank_ << ": tensor header from rank " << src << " has " << count
                            << " bytes, expected " << kHeaderBytes
                            << "; the ranks' calls are out of order");
    wire::validate_header(header, rank_, src);
    at::Tensor out = wire::empty_like_header(header);
    char* data = static_cast<char*>(out.data_ptr());
    // The payload is taken even when it is not what we expect, so the sender is not left blocked.
    for_each_chunk(header, [&](int64_t offset, int chunk) {
      check_mpi(MPI_Recv(data + offset, chunk, MPI_BYTE, src, options.tag, comm_, MPI_STATUS_IGNORE),
                rank_, "MPI_Recv of a tensor from rank " + std::to_string(src));
    });
    wire::check_expectation(header, options.expect, rank_, src);
    return out.to(options.device);
  }

  at::Tensor broadcast(const at::Tensor& tensor, const BroadcastOptions& options) override {
    int root = options.root;
    wire::check_root(root, rank_, size_);
    at::Tensor host;
    wire::TensorHeader header;
    if (rank_ == root) {
      header = header_or_failure(tensor, host, 0, -1, [&](auto& h) { bcast(&h, kHeaderBytes, root); });
    } else {
      bcast(&header, kHeaderBytes, root);
      wire::validate_header(header, rank_, root);
      host = wire::empty_like_header(header);
    }
    bcast_payload(host, header, root);
    return rank_ == root ? tensor : host;
  }

  std::vector<at::Tensor> all_gather(const at::Tensor& tensor) override {
    at::Tensor host;
    std::vector<wire::TensorHeader> headers(size_);
    header_or_failure(tensor, host, 0, -1, [&](auto& h) {
      check_mpi(MPI_Allgather(&h, kHeaderBytes, MPI_BYTE, headers.data(), kHeaderBytes, MPI_BYTE, comm_),
                rank_, "MPI_Allgather of tensor headers");
    });
    for (int r = 0; r < size_; ++r) wire::validate_header(headers[r], rank_, r);
    wire::check_same_dtype(headers, rank_);
    std::vector<at::Tensor> result(size_);
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) {
        result[r] = host.is_same(tensor) ? host.clone() : host;
      } else {
        result[r] = wire::empty_like_header(headers[r]);
      }
      bcast_payload(result[r], headers[r], r);
    }
    return result;
  }

  void barrier() override { check_mpi(MPI_Barrier(comm_), rank_, "MPI_Barrier"); }

  std::string broadcast_string(const std::string& value, int root) override {
    wire::check_root(root, rank_, size_);
    int64_t length = static_cast<int64_t>(value.size());
    bcast(&length, sizeof(length), root);
    std::string result = rank_ == root ? value : std::string(static_cast<size_t>(length), '\0');
    bcast_bytes(result.data(), length, root);
    return result;
  }

  std::vector<std::string> all_gather_string(const std::string& value) override {
    int64_t length = static_cast<int64_t>(value.size());
    std::vector<int64_t> lengths(size_);
    check_mpi(MPI_Allgather(&length, 1, MPI_INT64_T, lengths.data(), 1, MPI_INT64_T, comm_), rank_,
              "MPI_Allgather of string lengths");
    std::vector<std::string> result(size_);
    for (int r = 0; r < size_; ++r) {
      result[r] = r == rank_ ? value : std::string(static_cast<size_t>(lengths[r]), '\0');
      bcast_bytes(result[r].data(), lengths[r], r);
    }
    return result;
  }

  [[noreturn]] void abort(int exit_code) override {
    MPI_Abort(comm_, exit_code);
    std::_Exit(exit_code);  // MPI_Abort does not return; this is only a backstop
  }

 private:
  void check_user_tag(int tag) {
    wire::check_tag(tag, rank_);
    PIPEPRUNE_CHECK(tag <= max_tag_, ConfigError,
                    "rank " << rank_ << ": tag " << tag << " exceeds MPI_TAG_UB " << max_tag_);
  }

  // Builds the header of `tensor` (staged to `host`) and hands it to `exchange`. When the tensor
  // cannot be sent, a failed header is exchanged instead so the peers fail fast, and the error is
  // rethrown here.
  template <typename Exchange>
  wire::TensorHeader header_or_failure(const at::Tensor& tensor, at::Tensor& host, int tag, int peer,
                                       Exchange&& exchange) {
    wire::TensorHeader header;
    try {
      PIPEPRUNE_CHECK(tensor.defined(), CommError,
                      "rank " << rank_ << ": cannot send an undefined tensor");
      header = wire::make_header(tensor, tag, chunk_bytes_, rank_, peer);
      host = tensor.to(at::kCPU).contiguous();  // device tensors are staged through host memory
    } catch (...) {
      wire::TensorHeader failed = wire::failed_header();
      exchange(failed);
      throw;
    }
    exchange(header);
    return header;
  }

  template <typename Fn>
  static void for_each_chunk(const wire::TensorHeader& header, Fn&& fn) {
    for (int64_t offset = 0; offset < header.nbytes; offset += header.chunk_bytes) {
      fn(offset, static_cast<int>(std::min(header.chunk_bytes, header.nbytes - offset)));
    }
  }

  void bcast(void* data, int bytes, int root) {
    check_mpi(MPI_Bcast(data, bytes, MPI_BYTE, root, comm_), rank_,
              "MPI_Bcast from rank " + std::to_string(root));
  }

  void bcast_payload(const at::Tensor& tensor, const wire::TensorHeader& header, int root) {
    char* data = static_cast<char*>(tensor.data_ptr());
    for_each_chunk(header, [&](int64_t offset, int count) { bcast(data + offset, count, root); });
  }

  void bcast_bytes(char* data, int64_t length, int root) {
    for (int64_t offset = 0; offset < length; offset += kStringChunk) {
      bcast(data + offset, static_cast<int>(std::min(kStringChunk, length - offset)), root);
    }
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  int max_tag_ = 32767;  // the MPI standard's guaranteed minimum
  int64_t chunk_bytes_;
};

}  // namespace

std::unique_ptr<Transport> create_mpi_transport(const MpiTransportOptions& options) {
  PIPEPRUNE_CHECK(options.chunk_bytes > 0 && options.chunk_bytes <= INT_MAX, ConfigError,
                  "MPI transport: chunk size " << options.chunk_bytes << " must be in 1.." << INT_MAX);
  ensure_mpi();
  auto transport = std::make_unique<MpiTransport>(options);
  auto expected = launcher::launcher_world_size(launcher::process_env());
  PIPEPRUNE_CHECK(!expected || *expected == transport->size(), CommError,
                  "MPI transport: the launcher started " << *expected << " ranks but MPI sees a world of "
                      << transport->size()
                      << "; srun without MPI support starts independent copies (try srun --mpi=pmix)");
  return transport;
}

}  // namespace pipeprune
