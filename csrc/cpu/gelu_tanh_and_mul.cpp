// CPU gelu_tanh_and_mul: out = gelu_tanh(x[:, :d]) * x[:, d:].
#include <cmath>

#include "minfer/cpu_utils.h"

namespace minfer::cpu {

void gelu_tanh_and_mul(void* out, const void* input, int64_t rows, int64_t d,
                       int64_t out_row_stride, int64_t input_row_stride) {
  const auto gelu_tanh = [](float x) {
    constexpr float kSqrt2OverPi = 0.7978845608028654f;
    constexpr float kCoef = 0.044715f;
    return 0.5f * x * (1.f + std::tanh(kSqrt2OverPi * (x + kCoef * x * x * x)));
  };
  cpu_detail::act_and_mul(out, input, rows, d, out_row_stride, input_row_stride, gelu_tanh);
}

}  // namespace minfer::cpu
