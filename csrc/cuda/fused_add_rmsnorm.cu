// CUDA fused residual add + rmsnorm, in place: one row per block (or per warp
// for narrow rows).
#include "minfer/cuda_utils.cuh"

namespace minfer::cuda {
inline namespace detail {

using namespace cuda_detail;

// The norm must use the fp32 sum, not the residual rounded to the dtype, and
// a row may be too long to keep in registers or shared memory. So the first
// pass only reduces; the second re-reads both inputs, recomputes the sum
// bit-identically and writes both outputs. Each thread touches the same
// elements in both passes, so nothing is read after another thread wrote it.
template <int N>
__global__ void __launch_bounds__(kMaxThreads)
    fused_add_rmsnorm_kernel(scalar_t* input, scalar_t* residual, const scalar_t* weight,
                             int64_t rows, int64_t hidden, int64_t input_row_stride,
                             int64_t residual_row_stride, float eps) {
  using P = Pack<N>;
  const int64_t units = hidden / N;
  const auto* w = reinterpret_cast<const P*>(weight);
  for (int64_t row = first_row(); row < rows; row += row_step()) {
    auto* x = reinterpret_cast<P*>(input + row * input_row_stride);
    auto* res = reinterpret_cast<P*>(residual + row * residual_row_stride);

    float sum = 0.f;
    for (int64_t u = threadIdx.x; u < units; u += blockDim.x) {
      const P a = x[u], b = res[u];
#pragma unroll
      for (int j = 0; j < N; ++j) {
        const float s = to_float(a.v[j]) + to_float(b.v[j]);
        sum += s * s;
      }
    }
    const float scale = rsqrtf(row_sum(sum) / float(hidden) + eps);

    for (int64_t u = threadIdx.x; u < units; u += blockDim.x) {
      const P a = x[u], b = res[u], pw = w[u];
      P normed, summed;
#pragma unroll
      for (int j = 0; j < N; ++j) {
        const float s = to_float(a.v[j]) + to_float(b.v[j]);
        summed.v[j] = from_float(s);
        normed.v[j] = from_float(s * scale * to_float(pw.v[j]));
      }
      res[u] = summed;
      x[u] = normed;
    }
  }
}

}  // namespace detail

int fused_add_rmsnorm(void* input, void* residual, const void* weight, int64_t rows,
                      int64_t hidden, int64_t input_row_stride, int64_t residual_row_stride,
                      float eps, cudaStream_t stream) {
  if (rows <= 0 || hidden <= 0) return 0;
  auto* x = static_cast<scalar_t*>(input);
  auto* res = static_cast<scalar_t*>(residual);
  const auto* w = static_cast<const scalar_t*>(weight);
  const bool vec = hidden % kVec == 0 && vec_ok(x, input_row_stride) &&
                   vec_ok(res, residual_row_stride) && vec_ok(w, 0);
  if (vec) {
    const RowLaunch l = row_launch(rows, hidden / kVec);
    fused_add_rmsnorm_kernel<kVec><<<l.grid, l.block, 0, stream>>>(
        x, res, w, rows, hidden, input_row_stride, residual_row_stride, eps);
  } else {
    const RowLaunch l = row_launch(rows, hidden);
    fused_add_rmsnorm_kernel<1><<<l.grid, l.block, 0, stream>>>(
        x, res, w, rows, hidden, input_row_stride, residual_row_stride, eps);
  }
  return int(cudaGetLastError());
}

}  // namespace minfer::cuda
