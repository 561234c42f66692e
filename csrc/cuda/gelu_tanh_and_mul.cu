// CUDA gelu_tanh_and_mul: out = gelu_tanh(x[:, :d]) * x[:, d:].
#include "minfer/cuda_act_and_mul.cuh"

namespace minfer::cuda {
inline namespace detail {

struct GeluTanh {
  __device__ __forceinline__ float operator()(float x) const {
    constexpr float kSqrt2OverPi = 0.7978845608028654f;
    constexpr float kCoef = 0.044715f;
    return 0.5f * x * (1.f + tanhf(kSqrt2OverPi * (x + kCoef * x * x * x)));
  }
};

}  // namespace detail

int gelu_tanh_and_mul(void* out, const void* input, int64_t rows, int64_t d,
                      int64_t out_row_stride, int64_t input_row_stride, cudaStream_t stream) {
  return cuda_detail::launch_act_and_mul<GeluTanh>(out, input, rows, d, out_row_stride,
                                                   input_row_stride, stream);
}

}  // namespace minfer::cuda
