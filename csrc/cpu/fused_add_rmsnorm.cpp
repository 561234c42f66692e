// CPU fused residual add + rmsnorm, in place on input and residual.
#include <cmath>

#include "minfer/cpu_utils.h"

namespace minfer::cpu {

void fused_add_rmsnorm(void* input_, void* residual_, const void* weight_, int64_t rows,
                       int64_t hidden, int64_t input_row_stride, int64_t residual_row_stride,
                       float eps) {
  if (rows <= 0 || hidden <= 0) return;
  auto* input = static_cast<scalar_t*>(input_);
  auto* residual = static_cast<scalar_t*>(residual_);
  const auto* weight = static_cast<const scalar_t*>(weight_);
  for (int64_t r = 0; r < rows; ++r) {
    scalar_t* x = input + r * input_row_stride;
    scalar_t* res = residual + r * residual_row_stride;
    // The norm must see the fp32 sum, not the rounded residual, so the sum
    // is recomputed in the second pass instead of read back from `res`.
    const auto sum_at = [x, res](int64_t i) { return to_float(x[i]) + to_float(res[i]); };
    const float scale = 1.f / std::sqrt(cpu_detail::sum_squares(hidden, sum_at) / float(hidden) + eps);
    for (int64_t i = 0; i < hidden; ++i) {
      const float s = sum_at(i);
      res[i] = from_float(s);
      x[i] = from_float(s * scale * to_float(weight[i]));
    }
  }
}

}  // namespace minfer::cpu
