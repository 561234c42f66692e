// CPU rmsnorm: out = x * rsqrt(mean(x^2) + eps) * weight, row by row.
#include <cmath>

#include "minfer/cpu_utils.h"

namespace minfer::cpu {

void rmsnorm(void* out_, const void* input_, const void* weight_, int64_t rows, int64_t hidden,
             int64_t out_row_stride, int64_t input_row_stride, float eps) {
  if (rows <= 0 || hidden <= 0) return;
  auto* out = static_cast<scalar_t*>(out_);
  const auto* input = static_cast<const scalar_t*>(input_);
  const auto* weight = static_cast<const scalar_t*>(weight_);
  for (int64_t r = 0; r < rows; ++r) {
    const scalar_t* x = input + r * input_row_stride;
    scalar_t* y = out + r * out_row_stride;
    const float sum = cpu_detail::sum_squares(hidden, [x](int64_t i) { return to_float(x[i]); });
    const float scale = 1.f / std::sqrt(sum / float(hidden) + eps);
    // Reads x[i] before writing y[i], so out may be input itself.
    for (int64_t i = 0; i < hidden; ++i) y[i] = from_float(to_float(x[i]) * scale * to_float(weight[i]));
  }
}

}  // namespace minfer::cpu
