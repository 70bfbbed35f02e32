// An ActivationStore that holds samples in host RAM up to a byte budget and spills the rest to
// one HDF5 file.
//
// Placement, decided at each put(): a sample stays in (or moves to) RAM when the bytes held in
// RAM, counting this sample instead of its previous value, stay <= ram_budget_bytes; otherwise
// it is written to disk and its RAM copy (if any) is released. A sample whose shape and dtype
// match its RAM slot is copied into that slot, as in the in-memory store, so a layer loop that
// rewrites the same indices allocates nothing in RAM. RAM samples live on the CPU whatever the
// device of the tensor handed to put(); get() returns CPU tensors (the caller moves them).
//
// The file, `<spill_dir>/<file_stem>.h5`, is created (exclusively: an existing file is an
// error, never overwritten) by the factory, so an unusable --spill-dir fails before any work.
// Each distinct (sample shape, dtype) gets one dataset of shape [n_samples, ...sample shape],
// chunked one sample per chunk, allocated as chunks are first written (the file only grows
// with what spills), no fill values, no chunk cache: a put() is one pwrite of the sample's
// bytes straight from the tensor, a get() one pread into a fresh tensor. Elements are stored
// as HDF5 native float/double for fp32/fp64 and as unsigned integers of the element's width
// for everything else (bf16 and fp16 as uint16), with the dtype named in a "dtype" attribute;
// get() returns the very bytes that were put. In a pipeline every sample of a store has one
// shape, so one dataset stays open for the store's life.
//
// The file is closed and removed by the destructor, which also runs while an exception unwinds
// the owner. A job abort (MPI_Abort) skips destructors: the owner registers spill_path() with
// its abort-cleanup hook. HDF5's error stack printing is switched off for the calling thread;
// failures become one-line IoErrors naming the file (a failed write says "disk full?").
// One store is used by one thread; stores in different threads are independent (the Debian
// HDF5 library is built thread-safe).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "core/memory/activation_store.h"

namespace pipeprune {

class SpillingActivationStore : public ActivationStore {
 public:
  // The HDF5 file this store writes (exists from construction until destruction).
  virtual const std::filesystem::path& spill_path() const = 0;
  // Samples currently on disk.
  virtual int64_t samples_spilled() const = 0;
};

// A store of n_samples (>= 0) with at most ram_budget_bytes (>= 0) of samples in RAM.
// IoError naming spill_dir when it is not an existing directory or the file cannot be
// created there; ConfigError for negative sizes.
std::unique_ptr<SpillingActivationStore> make_spilling_activation_store(int64_t n_samples,
                                                                        int64_t ram_budget_bytes,
                                                                        const std::filesystem::path& spill_dir,
                                                                        const std::string& file_stem);

}  // namespace pipeprune
