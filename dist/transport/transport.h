// Moving tensors and small messages between the ranks of one job.
//
// One interface, three backends: LocalTransport (one process; or N ranks as threads of one
// process for unit tests), MpiTransport (CPU tensors; device tensors staged through host
// memory) and NcclTransport (device tensors on its own stream; bootstrapped over MPI). Only
// create_transport() knows which backends were compiled in.
//
// Contract (as in c10d's ProcessGroup): every rank calls the collectives (broadcast,
// all_gather, barrier) in the same order with matching arguments; point-to-point send/recv
// pairs match by (peer, tag) in program order. Calls block until their data is delivered or
// received. A Transport object is used by one thread at a time.
//
// Tensors travel as contiguous bytes after a small header (dtype, shape; at most 8 dims). The
// receiver checks the header against what it expects: a mismatch is a CommError naming both
// ranks and both shapes, never a silent reinterpretation. The payload is still received before
// the error is thrown, so the sender is never left blocked and both ranks stay in step.
// Tags are >= 0. Sending to oneself is an error on every backend (blocking MPI would deadlock).
//
// A rank that fails: the library throws; main() catches, logs the error with the rank and
// calls transport->abort(code), which ends every rank of the job (MPI_Abort), so no rank waits
// forever for a peer that is gone. Under MPI only the thread that created the transport may call
// it (MPI_THREAD_FUNNELED).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pipeprune {

// What a receiver expects; unset fields accept anything.
struct TensorExpectation {
  std::optional<c10::ScalarType> dtype;
  std::optional<std::vector<int64_t>> shape;
};

struct SendOptions {
  int tag = 0;
};

struct RecvOptions {
  int tag = 0;
  TensorExpectation expect;
  // Device of the returned tensor (CPU by default).
  c10::Device device = c10::Device(c10::kCPU);
};

struct BroadcastOptions {
  int root = 0;
};

// The message tag reduce_sum_into keeps for itself: below 32767, the smallest MPI_TAG_UB MPI
// allows, and far above the job's stream tags.
constexpr int kReduceTag = 32700;

struct ReduceOptions {
  int root = 0;
  // Ranks 0..contributors-1 contribute a tensor; the others pass an undefined one and send
  // nothing (the last round of a sample-parallel reduction). -1: every rank.
  int contributors = -1;
};

class Transport {
 public:
  virtual ~Transport() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "local", "mpi" or "nccl".
  virtual const char* backend_name() const = 0;

  virtual void send(const at::Tensor& tensor, int dst, const SendOptions& options = {}) = 0;
  virtual at::Tensor recv(int src, const RecvOptions& options = {}) = 0;
  // On the root, `tensor` is sent; elsewhere it is ignored. Returns the root's tensor on every rank.
  virtual at::Tensor broadcast(const at::Tensor& tensor, const BroadcastOptions& options = {}) = 0;
  // Every rank contributes one tensor (same dtype; shapes may differ); returns all of them in
  // rank order on every rank.
  virtual std::vector<at::Tensor> all_gather(const at::Tensor& tensor) = 0;
  virtual void barrier() = 0;

  // Small messages (plans, paths, error texts) as strings.
  virtual std::string broadcast_string(const std::string& value, int root = 0) = 0;
  virtual std::vector<std::string> all_gather_string(const std::string& value) = 0;

  // Ends the whole job from this rank after a fatal error (MPI_Abort under MPI), so no
  // surviving rank waits forever. Returns only for the local single-rank transport.
  virtual void abort(int exit_code) = 0;

  // Sums the contributing ranks' tensors onto the root in rank order: on the root, `accumulator`
  // becomes ((accumulator + t_0) + t_1) + ... + t_{k-1}, added in exactly that order (one
  // elementwise add per contribution, on the accumulator's device), so its bits depend only on
  // the values and their order, never on the backend or on how many ranks there are. This is
  // why it is built from point-to-point messages (ncclSend/ncclRecv under NCCL, MPI_Send/Recv
  // of host tensors under MPI) and not on ncclReduce or MPI_Reduce, whose summation trees
  // change with the world size. Contributions must match the accumulator's shape and dtype (a
  // CommError naming both ranks otherwise); elsewhere `accumulator` is not touched. Collective.
  void reduce_sum_into(at::Tensor& accumulator, const at::Tensor& contribution, const ReduceOptions& options = {});

  // Convenience: every rank's value, in rank order.
  std::vector<double> all_gather_double(double value);
  // True on every rank if `ok` is true on every rank (for agreeing on pass/fail in tests).
  bool all_agree(bool ok);
};

enum class TransportKind { kAuto, kLocal, kMpi, kNccl };
// "auto" | "local" | "mpi" | "nccl"; ConfigError naming --transport otherwise.
TransportKind parse_transport_kind(const std::string& name);

struct TransportOptions {
  TransportKind kind = TransportKind::kAuto;
  // Device the tensors will live on; auto picks NCCL only for CUDA devices when it is usable.
  c10::Device device = c10::Device(c10::kCPU);
};

// True when this process was started by an MPI launcher, detected from the environment before
// MPI_Init (rule and reasons in launcher_env.h): OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK or
// MV2_COMM_WORLD_SIZE set; or, for srun without a PMI plugin, a Slurm step of more than one task.
// Slurm variables alone (a batch script, `srun -n 1`) do not count.
bool launched_under_mpi();

// Creates the transport of this process. kAuto: MPI when launched under mpirun/srun, NCCL on
// top of it for CUDA devices when compiled in and usable, local otherwise. Asking for a
// backend that was not compiled in or cannot run here is a CommError saying so. Collective
// under MPI: every rank calls it (the MPI backends duplicate MPI_COMM_WORLD). The first MPI
// transport initialises MPI (MPI_THREAD_FUNNELED) unless it already is, and then finalises it
// at exit.
std::unique_ptr<Transport> create_transport(const TransportOptions& options);

struct LocalWorldOptions {
  // A recv (or collective) that waits longer than this throws CommError instead of hanging.
  double recv_timeout_seconds = 300.0;
};

// N in-process ranks connected by queues, each used from its own thread (unit tests). The
// transports share one hub and may be destroyed in any order. abort() on one rank wakes every
// rank waiting on the hub with a CommError and returns.
std::vector<std::unique_ptr<Transport>> create_local_world(int world_size,
                                                           const LocalWorldOptions& options = {});

}  // namespace pipeprune
