#include "dist/transport/torch_cuda_stream.h"

#ifdef PIPEPRUNE_CUDA_LIBTORCH
#include <c10/cuda/CUDAStream.h>
#endif

namespace pipeprune {

void* torch_current_cuda_stream(int device) {
#ifdef PIPEPRUNE_CUDA_LIBTORCH
  return c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device)).stream();
#else
  (void)device;
  return nullptr;
#endif
}

}  // namespace pipeprune
