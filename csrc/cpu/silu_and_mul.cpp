// CPU silu_and_mul: out = silu(x[:, :d]) * x[:, d:].
#include <cmath>

#include "minfer/cpu_utils.h"

namespace minfer::cpu {

void silu_and_mul(void* out, const void* input, int64_t rows, int64_t d, int64_t out_row_stride,
                  int64_t input_row_stride) {
  // For very negative x, exp(-x) overflows to inf and x / inf gives -0, the right limit.
  const auto silu = [](float x) { return x / (1.f + std::exp(-x)); };
  cpu_detail::act_and_mul(out, input, rows, d, out_row_stride, input_row_stride, silu);
}

}  // namespace minfer::cpu
