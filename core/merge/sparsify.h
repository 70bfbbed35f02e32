// Sparsification of task vectors: TIES' magnitude trim, DARE's random drop, and the rescale that
// follows either (mergekit's sparsify.py; /work/shared/MERGE_SEMANTICS.md).
//
// Every result is a function of its arguments alone: the trim breaks ties by the lowest flat
// index, and the DARE drop draws element i from a counter-based hash of (seed, stream, i), so a
// mask is the same at any thread count, world size or tensor order. The kernels run on the CPU
// (at::parallel_for over raw pointers); masks of tensors on another device are made from a host
// copy and moved back. Stateless and thread-safe.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "core/merge/merge_method.h"

namespace pipeprune {

// TIES' trim: a bool mask of delta's shape and device keeping the k = int(density * numel)
// entries of largest |delta| (the double product truncated, like Python's int()). Among equal
// magnitudes the lowest flat index is kept, i.e. the first k of a stable order by
// (|delta| descending, index ascending); NaN counts as the largest magnitude, as in torch.sort.
// density >= 1 keeps all, k == 0 keeps none. Any float dtype; found by a radix selection on the
// fp32 magnitudes' bits, not a sort.
at::Tensor magnitude_keep_mask(const at::Tensor& delta, double density);

// The DARE stream of one (tensor, model) pair: FNV-1a of the name mixed with the model index.
// Stable across builds and platforms (it names no pointer and no std::hash).
uint64_t dare_stream(const std::string& tensor_name, int model_index);

// DARE's drop: a CPU bool tensor of `shape` whose flat element i is kept iff
// u(seed, stream, i) < density, u uniform in [0, 1) with 53 random bits (splitmix64 of a key
// made from (seed, stream), at counter i). Element i depends on nothing else: the first n
// elements of a longer mask are the mask of n elements. density >= 1 keeps all.
at::Tensor dare_keep_mask(at::IntArrayRef shape, double density, uint64_t seed, uint64_t stream);

// md = delta * keep (a dropped entry becomes delta * 0, as mergekit's float mask gives), then:
//   kNone        md
//   kInvDensity  md / density (fp32 division by float(density)); factor 1/density
//   kL1          md * float(before / after), before = sum |delta|, after = sum |md| accumulated
//                in fp64 (in fixed chunks, so independent of the thread count); when before or
//                after < 1e-7 md is returned unscaled, factor 1
// delta fp32, keep bool of delta's shape (moved to delta's device if needed). The factor applied
// is stored in *factor when factor is not null. Returns a new fp32 tensor on delta's device.
at::Tensor rescaled_masked(const at::Tensor& delta, const at::Tensor& keep, Rescale rescale, double density,
                           double* factor);

}  // namespace pipeprune
