// The tensors of a zip-format torch.save archive (pytorch_model*.bin, PyTorch >= 1.6).
//
// The archive is read with LibTorch's own PyTorchStreamReader (records, data.pkl, each
// record's data offset) over bytes the caller has mmap'd; data.pkl goes through the restricted
// unpickler of torch_pickle.h. torch.save stores every record uncompressed, so a tensor's bytes
// lie in the file at (record offset + storage_offset x element size) and are read from the
// mapping only when the tensor is loaded, as for safetensors.
// Checked here, each a one-line FormatError naming the file (and the tensor): the zip format
// (a legacy pre-1.6 file gets its own message), storage dtypes F32/F16/BF16 only, contiguous
// tensors, storage_offset + numel within the storage and the storage within its record, and
// records stored uncompressed inside the file. Tensors sharing a storage (tied embeddings kept
// shared by torch.save) are each listed, with overlapping byte ranges.
// Pure apart from reading `base`; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/io/safetensors.h"

namespace pipeprune {

// The tensors of the archive whose `size` bytes are mapped at `base`, with file_offset and
// n_bytes set (file_index is the caller's), in the order of their data offsets.
std::vector<TensorInfo> read_torch_archive(const std::string& file, const uint8_t* base, int64_t size);

}  // namespace pipeprune
