// NumPy .npy files: reading token matrices for --calib-tokens, writing arrays for tests and tools.
//
// Reads format versions 1.0, 2.0 and 3.0 (magic, version, header length, then the header: a
// Python dict literal with 'descr', 'fortran_order' and 'shape'), C order only, little-endian
// int32, int64 and float32. Writes version 1.0 the way numpy does (header padded with spaces to
// a multiple of 64 bytes, ending in a newline), so np.load reads it.
// Every failure is one line naming the file: IoError when it cannot be read or written,
// FormatError when its content is not what is needed. Free functions; no shared state.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace pipeprune {

struct NpyArray {
  std::string descr;           // as stored, e.g. "<i8"
  std::vector<int64_t> shape;  // empty for a 0-d array
  at::Tensor data;             // contiguous CPU tensor of `shape`: int32, int64 or float32
};

// Any shape; dtypes <i4, <i8, <f4 ('=' accepted for native order: this is a little-endian build).
NpyArray read_npy(const std::filesystem::path& path);

// The --calib-tokens matrix: a 2-D int32 or int64 .npy, [n_samples, seqlen], returned as int64.
// Checks: dtype ("FILE: dtype <f4; --calib-tokens needs int32 or int64"), 2-D and non-empty,
// every id >= 0 and, when vocab_size > 0, every id < vocab_size.
at::Tensor read_token_matrix(const std::filesystem::path& path, int64_t vocab_size = 0);

// Writes a CPU or device tensor of int64, int32 or float32 (any shape, any strides) atomically.
void write_npy(const std::filesystem::path& path, const at::Tensor& tensor);

}  // namespace pipeprune
