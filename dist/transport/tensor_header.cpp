#include "dist/transport/tensor_header.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstring>
#include <limits>
#include <sstream>

#include "core/common/error.h"

namespace pipeprune::wire {
namespace {

// Compact ("[2,8]"): a header mismatch names two shapes on one line.
std::string shape_string(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ",")); }

std::string describe_expectation(const TensorExpectation& expect, const TensorHeader& got) {
  std::string shape = expect.shape ? shape_string(*expect.shape) : shape_string(header_shape(got));
  std::string dtype = expect.dtype ? dtype_name(*expect.dtype) : dtype_name(header_dtype(got));
  return shape + " " + dtype;
}

std::string peer_name(int peer) { return peer < 0 ? "every rank" : "rank " + std::to_string(peer); }

}  // namespace

bool is_wire_dtype(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::kFloat: case c10::kDouble: case c10::kHalf: case c10::kBFloat16:
    case c10::kLong: case c10::kInt: case c10::kShort: case c10::kChar: case c10::kByte:
    case c10::kBool: case c10::kComplexFloat: case c10::kComplexDouble:
      return true;
    default:
      return false;
  }
}

std::string dtype_name(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::kFloat: return "float32";
    case c10::kDouble: return "float64";
    case c10::kHalf: return "float16";
    case c10::kBFloat16: return "bfloat16";
    case c10::kLong: return "int64";
    case c10::kInt: return "int32";
    case c10::kShort: return "int16";
    case c10::kChar: return "int8";
    case c10::kByte: return "uint8";
    case c10::kBool: return "bool";
    case c10::kComplexFloat: return "complex64";
    case c10::kComplexDouble: return "complex128";
    default: return c10::toString(dtype);
  }
}

std::string describe(c10::ScalarType dtype, const std::vector<int64_t>& shape) {
  return shape_string(shape) + " " + dtype_name(dtype);
}

TensorHeader make_header(const at::Tensor& tensor, int tag, int64_t chunk_bytes, int rank, int peer) {
  PIPEPRUNE_CHECK(tensor.defined(), CommError,
                  "rank " << rank << ": cannot send an undefined tensor to " << peer_name(peer));
  PIPEPRUNE_CHECK(tensor.dim() <= kMaxDims, CommError,
                  "rank " << rank << ": tensor for " << peer_name(peer) << " has " << tensor.dim()
                          << " dims " << describe(tensor.scalar_type(), tensor.sizes().vec())
                          << "; the transport carries at most " << kMaxDims << ": reshape it first");
  PIPEPRUNE_CHECK(is_wire_dtype(tensor.scalar_type()), CommError,
                  "rank " << rank << ": tensor for " << peer_name(peer) << " has dtype "
                          << dtype_name(tensor.scalar_type())
                          << ", which the transport does not carry; convert it first");
  TensorHeader header;
  header.dtype = static_cast<int32_t>(tensor.scalar_type());
  header.ndim = static_cast<int32_t>(tensor.dim());
  header.tag = tag;
  for (int64_t d = 0; d < tensor.dim(); ++d) header.shape[d] = tensor.size(d);
  header.nbytes = static_cast<int64_t>(tensor.numel()) * static_cast<int64_t>(tensor.element_size());
  header.chunk_bytes = chunk_bytes;
  return header;
}

TensorHeader failed_header() {
  TensorHeader header;
  header.magic = kFailedMagic;
  return header;
}

void validate_header(const TensorHeader& header, int rank, int src) {
  PIPEPRUNE_CHECK(header.magic != kFailedMagic, CommError,
                  "rank " << rank << ": " << peer_name(src)
                          << " failed before sending its tensor; see that rank's error");
  auto bad = [&](const std::string& what) {
    PIPEPRUNE_FAIL(CommError, "rank " << rank << ": corrupt tensor header from " << peer_name(src)
                                      << " (" << what
                                      << "); the ranks run different builds or their calls are out of order");
  };
  if (header.magic != kHeaderMagic) bad("bad magic");
  if (header.ndim < 0 || header.ndim > kMaxDims) bad("ndim " + std::to_string(header.ndim));
  auto dtype = static_cast<c10::ScalarType>(header.dtype);
  if (header.dtype < 0 || header.dtype >= static_cast<int32_t>(c10::ScalarType::NumOptions) ||
      !is_wire_dtype(dtype)) {
    bad("dtype code " + std::to_string(header.dtype));
  }
  int64_t bytes = static_cast<int64_t>(c10::elementSize(dtype));
  for (int d = 0; d < header.ndim; ++d) {
    int64_t dim = header.shape[d];
    if (dim < 0) bad("negative dim");
    if (dim != 0 && bytes > std::numeric_limits<int64_t>::max() / dim) bad("size overflows");
    bytes *= dim;
  }
  if (bytes != header.nbytes) {
    bad("byte count " + std::to_string(header.nbytes) + " != " + std::to_string(bytes));
  }
  if (header.chunk_bytes <= 0 || header.chunk_bytes > std::numeric_limits<int>::max()) {
    bad("chunk size " + std::to_string(header.chunk_bytes));
  }
}

c10::ScalarType header_dtype(const TensorHeader& header) {
  return static_cast<c10::ScalarType>(header.dtype);
}

std::vector<int64_t> header_shape(const TensorHeader& header) {
  return std::vector<int64_t>(header.shape, header.shape + header.ndim);
}

void check_expectation(const TensorHeader& header, const TensorExpectation& expect, int rank,
                       int src, const char* what) {
  bool dtype_ok = !expect.dtype || *expect.dtype == header_dtype(header);
  bool shape_ok = !expect.shape || *expect.shape == header_shape(header);
  PIPEPRUNE_CHECK(dtype_ok && shape_ok, CommError,
                  "rank " << rank << ": " << what << " from rank " << src << " has shape "
                          << describe(header_dtype(header), header_shape(header)) << ", expected "
                          << describe_expectation(expect, header)
                          << "; the ranks disagree on the plan or their calls are out of order");
}

void check_same_dtype(const std::vector<TensorHeader>& headers, int rank) {
  for (size_t r = 1; r < headers.size(); ++r) {
    PIPEPRUNE_CHECK(headers[r].dtype == headers[0].dtype, CommError,
                    "rank " << rank << ": all_gather got "
                            << dtype_name(header_dtype(headers[0])) << " from rank 0 but "
                            << dtype_name(header_dtype(headers[r])) << " from rank " << r
                            << "; every rank must contribute the same dtype");
  }
}

at::Tensor header_to_tensor(const TensorHeader& header) {
  at::Tensor bytes = at::empty({static_cast<int64_t>(sizeof(TensorHeader))}, at::kByte);
  std::memcpy(bytes.data_ptr(), &header, sizeof(TensorHeader));
  return bytes;
}

TensorHeader header_from_tensor(const at::Tensor& bytes, int rank, int src) {
  PIPEPRUNE_CHECK(bytes.scalar_type() == at::kByte && bytes.dim() == 1 &&
                      bytes.numel() == static_cast<int64_t>(sizeof(TensorHeader)),
                  CommError,
                  "rank " << rank << ": tensor header from " << peer_name(src) << " has "
                          << bytes.numel() << " bytes, expected " << sizeof(TensorHeader)
                          << "; the ranks run different builds or their calls are out of order");
  TensorHeader header;
  at::Tensor cpu = bytes.contiguous();
  std::memcpy(&header, cpu.data_ptr(), sizeof(TensorHeader));
  validate_header(header, rank, src);
  return header;
}

at::Tensor empty_like_header(const TensorHeader& header) {
  return at::empty(header_shape(header), at::TensorOptions().dtype(header_dtype(header)));
}

void check_peer(const char* op, int peer, int rank, int size) {
  PIPEPRUNE_CHECK(peer >= 0 && peer < size, CommError,
                  "rank " << rank << ": " << op << " with rank " << peer << " but the world has "
                          << size << " rank" << (size == 1 ? "" : "s"));
  PIPEPRUNE_CHECK(peer != rank, CommError,
                  "rank " << rank << ": " << op << " with itself; a rank cannot " << op
                          << " its own tensors (keep the tensor instead)");
}

void check_tag(int tag, int rank) {
  PIPEPRUNE_CHECK(tag >= 0, ConfigError,
                  "rank " << rank << ": tag " << tag << " is negative; tags must be >= 0");
}

void check_root(int root, int rank, int size) {
  PIPEPRUNE_CHECK(root >= 0 && root < size, ConfigError,
                  "rank " << rank << ": broadcast root " << root << " is outside the world of "
                          << size << " rank" << (size == 1 ? "" : "s"));
}

}  // namespace pipeprune::wire
