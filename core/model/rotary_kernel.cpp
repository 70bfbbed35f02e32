#include "core/model/rotary_kernel.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdint>

#include "core/common/error.h"

namespace pipeprune {

bool rotate_cpu_applies(const at::Tensor& x, const at::Tensor& cos) {
  return x.is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 4 && x.stride(3) == 1 && x.size(3) % 2 == 0 &&
         cos.is_cpu() && cos.scalar_type() == at::kFloat && cos.dim() == 2 && cos.size(0) == x.size(1) &&
         cos.size(1) == x.size(3);
}

at::Tensor rotate_cpu(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  PIPEPRUNE_CHECK(rotate_cpu_applies(x, cos) && sin.sizes() == cos.sizes() && sin.scalar_type() == at::kFloat &&
                      sin.is_cpu(),
                  Error, "rotate_cpu: x " << x.sizes() << " " << x.scalar_type() << ", cos " << cos.sizes()
                                          << ", sin " << sin.sizes() << " do not fit the CPU rotary kernel");
  const int64_t batch = x.size(0), tokens = x.size(1), heads = x.size(2), dim = x.size(3), half = dim / 2;
  const at::Tensor c = cos.contiguous(), s = sin.contiguous();
  at::Tensor out = at::empty({batch, tokens, heads, dim}, x.options());
  const float* xp = x.data_ptr<float>();
  const float* cp = c.data_ptr<float>();
  const float* sp = s.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const int64_t sb = x.stride(0), st = x.stride(1), sh = x.stride(2);
  // One (batch, token) row of all heads per step: heads * D floats, 8 KiB for a 2048-wide q.
  at::parallel_for(0, batch * tokens, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / tokens, t = r % tokens;
      const float* cr = cp + t * dim;
      const float* sr = sp + t * dim;
      for (int64_t h = 0; h < heads; ++h) {
        const float* xr = xp + b * sb + t * st + h * sh;
        float* o = op + (r * heads + h) * dim;
        // rotate_half(x) = cat(-x[half:], x[:half]); each product rounded, then the sum.
        for (int64_t i = 0; i < half; ++i) {
          const float a = xr[i] * cr[i];
          const float bterm = -xr[i + half] * sr[i];
          o[i] = a + bterm;
        }
        for (int64_t i = half; i < dim; ++i) {
          const float a = xr[i] * cr[i];
          const float bterm = xr[i - half] * sr[i];
          o[i] = a + bterm;
        }
      }
    }
  });
  return out;
}

}  // namespace pipeprune
