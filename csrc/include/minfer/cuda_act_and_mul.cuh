// The gated-activation kernel shared by silu_and_mul and gelu_tanh_and_mul
// (torch-free, nvcc only): out[r, i] = act(x[r, i]) * x[r, d + i].
#pragma once

#include "minfer/cuda_utils.cuh"

namespace minfer::cuda_detail {
inline namespace detail {  // spec-dependent: hidden in this library (see config.h)

template <class Act, int N>
__global__ void __launch_bounds__(kMaxThreads)
    act_and_mul_kernel(scalar_t* out, const scalar_t* input, int64_t rows, int64_t d,
                       int64_t out_row_stride, int64_t input_row_stride) {
  using P = Pack<N>;
  const int64_t units = d / N;
  for (int64_t row = first_row(); row < rows; row += row_step()) {
    const scalar_t* in_row = input + row * input_row_stride;
    const auto* x = reinterpret_cast<const P*>(in_row);
    const auto* gate = reinterpret_cast<const P*>(in_row + d);
    auto* y = reinterpret_cast<P*>(out + row * out_row_stride);
    for (int64_t u = threadIdx.x; u < units; u += blockDim.x) {
      const P a = x[u], b = gate[u];
      P r;
#pragma unroll
      for (int j = 0; j < N; ++j) r.v[j] = from_float(Act{}(to_float(a.v[j])) * to_float(b.v[j]));
      y[u] = r;
    }
  }
}

// 16-byte accesses need d % kVec == 0 (which also aligns the gate half) and
// aligned rows; anything else takes the one-element path.
template <class Act>
int launch_act_and_mul(void* out, const void* input, int64_t rows, int64_t d,
                       int64_t out_row_stride, int64_t input_row_stride, cudaStream_t stream) {
  if (rows <= 0 || d <= 0) return 0;
  auto* o = static_cast<scalar_t*>(out);
  const auto* x = static_cast<const scalar_t*>(input);
  if (d % kVec == 0 && vec_ok(o, out_row_stride) && vec_ok(x, input_row_stride)) {
    const RowLaunch l = row_launch(rows, d / kVec);
    act_and_mul_kernel<Act, kVec>
        <<<l.grid, l.block, 0, stream>>>(o, x, rows, d, out_row_stride, input_row_stride);
  } else {
    const RowLaunch l = row_launch(rows, d);
    act_and_mul_kernel<Act, 1>
        <<<l.grid, l.block, 0, stream>>>(o, x, rows, d, out_row_stride, input_row_stride);
  }
  return int(cudaGetLastError());
}

}  // namespace detail
}  // namespace minfer::cuda_detail
