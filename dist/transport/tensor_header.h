// The fixed-size header that precedes every tensor on the wire, and the checks around it.
//
// Private to dist/transport; shared by all backends so that they accept and reject exactly the
// same tensors with the same messages. A header is plain bytes (trivially copyable, 104 bytes,
// host byte order: every rank of a job runs on the same architecture). Pure functions; thread-safe.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "dist/transport/transport.h"

namespace pipeprune::wire {

constexpr uint32_t kHeaderMagic = 0x50505448;  // "PPTH"
// Sent instead of a real header when the sender failed before it could send its tensor (bad
// dtype, too many dims), so the receivers fail fast with a CommError instead of waiting.
constexpr uint32_t kFailedMagic = 0x50504641;  // "PPFA"
constexpr int kMaxDims = 8;

struct TensorHeader {
  uint32_t magic = kHeaderMagic;
  int32_t dtype = 0;  // c10::ScalarType
  int32_t ndim = 0;
  int32_t tag = 0;
  int64_t shape[kMaxDims] = {};
  int64_t nbytes = 0;
  // How the sender split the payload into messages; the receiver follows it (MPI counts are int).
  int64_t chunk_bytes = 0;
  int64_t reserved = 0;
};
static_assert(std::is_trivially_copyable<TensorHeader>::value, "sent as raw bytes");
static_assert(sizeof(TensorHeader) == 104, "wire layout changed");

// "float32", "bfloat16", "int64", ...: the dtypes the transport carries; others are rejected.
bool is_wire_dtype(c10::ScalarType dtype);
std::string dtype_name(c10::ScalarType dtype);
// "[2,8] float32"; "[] float32" for a scalar.
std::string describe(c10::ScalarType dtype, const std::vector<int64_t>& shape);

// Header of a tensor that `rank` is about to send to `peer` (a rank, or -1 for a collective).
// CommError for more than kMaxDims dims or a dtype the transport does not carry.
TensorHeader make_header(const at::Tensor& tensor, int tag, int64_t chunk_bytes, int rank, int peer);

TensorHeader failed_header();

// Checks a header received by `rank` from `src`: magic, dims, dtype, byte count consistent with
// the shape (overflow-checked), chunk size. CommError naming both ranks otherwise, and one
// saying that `src` failed for a failed_header().
void validate_header(const TensorHeader& header, int rank, int src);

c10::ScalarType header_dtype(const TensorHeader& header);
std::vector<int64_t> header_shape(const TensorHeader& header);

// CommError "rank 1: tensor from rank 0 has shape [2,8] float32, expected [2,16] float32" when
// the header does not match the expectation; `what` replaces "tensor" (e.g. "broadcast").
void check_expectation(const TensorHeader& header, const TensorExpectation& expect, int rank,
                       int src, const char* what = "tensor");

// All-gather contract: every rank sends the same dtype. CommError naming the ranks otherwise.
void check_same_dtype(const std::vector<TensorHeader>& headers, int rank);

// The header as a 1-D uint8 CPU tensor and back (for carrying it over another transport).
at::Tensor header_to_tensor(const TensorHeader& header);
TensorHeader header_from_tensor(const at::Tensor& bytes, int rank, int src);

// An empty CPU tensor with the header's dtype and shape.
at::Tensor empty_like_header(const TensorHeader& header);

// Argument checks every backend makes before touching the wire: CommError for a peer outside
// [0, size) or equal to `rank` (`op` is "send" or "recv"), ConfigError for a negative tag or root.
void check_peer(const char* op, int peer, int rank, int size);
void check_tag(int tag, int rank);
void check_root(int root, int rank, int size);

}  // namespace pipeprune::wire
