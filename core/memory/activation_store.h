// Where the calibration activations of one rank live between passes: one tensor per sample
// (the hidden states entering or leaving a layer), indexed 0..n-1.
//
// Two implementations behind one interface: in host RAM, and RAM up to a byte budget with the
// rest spilled to an HDF5 file (core/memory/hdf5_activation_store.h). A store is owned and used
// by one thread. Tensors handed to put() are copied (the caller may reuse its buffer); get()
// returns the stored tensor, valid until the next put() to the same index.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>

namespace pipeprune {

class ActivationStore {
 public:
  virtual ~ActivationStore() = default;
  virtual int64_t size() const = 0;
  virtual void put(int64_t index, const at::Tensor& activation) = 0;
  virtual at::Tensor get(int64_t index) const = 0;
  // Bytes held in RAM now.
  virtual int64_t bytes_in_memory() const = 0;
  // Bytes written to disk now (0 for the in-memory store).
  virtual int64_t bytes_spilled() const = 0;
};

// All samples where they are put: host RAM for CPU tensors, the device for device tensors.
std::unique_ptr<ActivationStore> make_memory_activation_store(int64_t n_samples);
// All samples in host RAM whatever device they come from: a GPU rank's activations offloaded
// from the device. Copies of CUDA tensors land in pinned memory (the copy back is DMA).
std::unique_ptr<ActivationStore> make_host_activation_store(int64_t n_samples);

}  // namespace pipeprune
