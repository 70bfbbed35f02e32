// A restricted unpickler for the data.pkl of a torch.save archive holding a flat state dict.
//
// torch.save pickles a state dict as a dict (or collections.OrderedDict) of tensors, each
// rebuilt by torch._utils._rebuild_tensor_v2 from a persistent id
// ('storage', torch.<Type>Storage, key, location, numel) that names a record of the archive.
// This parser interprets only the opcodes such a pickle uses and only the globals
// collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch.<Type>Storage; it builds
// plain values and never calls or imports anything. Any other global, an unknown opcode, a
// truncated stream or a top-level object that is not a flat name -> tensor dict is a
// FormatError naming the file. Dtype, contiguity and bounds are the caller's checks
// (torch_archive.h): this layer only reports what the pickle says.
// Pure and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pipeprune {

// One persistent id: the storage a tensor views.
struct PickledStorage {
  std::string type;      // the storage class without "torch.", e.g. "FloatStorage"
  std::string key;       // the record is "data/<key>"
  std::string location;  // "cpu", "cuda:0", ... (ignored: the bytes are the same)
  int64_t numel = 0;     // elements of the storage's type
};

struct PickledTensor {
  std::string name;
  PickledStorage storage;
  int64_t storage_offset = 0;  // in elements
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;
};

// Parses `n` bytes of data.pkl; `file` names the archive in errors. Tensors in the dict's order.
std::vector<PickledTensor> parse_torch_state_dict(const std::string& file, const uint8_t* data, size_t n);

}  // namespace pipeprune
