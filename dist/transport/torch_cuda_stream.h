// LibTorch's current CUDA stream for a device, as a raw cudaStream_t, for the NCCL backend to
// order its calls after (dist/transport/nccl_transport.h). Built against a CUDA LibTorch
// (PIPEPRUNE_CUDA_LIBTORCH) it asks c10::cuda; otherwise there is no LibTorch stream and this is
// the legacy default stream (nullptr), where such a build's CUDA work, if any, runs.
#pragma once

namespace pipeprune {

void* torch_current_cuda_stream(int device);

}  // namespace pipeprune
