// CUDA gelu_tanh_and_mul: out = gelu_tanh(x[:, :d]) * x[:, d:].
#include "minfer/cuda_act_and_mul.cuh"

namespace minfer::cuda {
inline namespace detail {

struct GeluTanh {
  // 0.5 x (1 + tanh(u)) = x * sigmoid(2u) = x / (1 + exp(-2u)), with
  // u = sqrt(2/pi) (x + 0.044715 x^3): one expf instead of tanhf, and no
  // cancellation in 1 + tanh(u) for negative x. For very negative x, expf is
  // inf (or above 2^126) and the quotient is -0, the right limit; for large x
  // it is x / 1. The fast division (2 ulp), as in silu_and_mul.cu and why.
  __device__ __forceinline__ float operator()(float x) const {
    constexpr float kTwoSqrt2OverPi = 2.f * 0.7978845608028654f;
    constexpr float kCoef = 0.044715f;
    return __fdividef(x, 1.f + expf(-kTwoSqrt2OverPi * (x + kCoef * x * x * x)));
  }
};

}  // namespace detail

int gelu_tanh_and_mul(void* out, const void* input, int64_t rows, int64_t d,
                      int64_t out_row_stride, int64_t input_row_stride, cudaStream_t stream) {
  return cuda_detail::launch_act_and_mul<GeluTanh>(out, input, rows, d, out_row_stride,
                                                   input_row_stride, stream);
}

}  // namespace minfer::cuda
