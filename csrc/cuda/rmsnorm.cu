// CUDA rmsnorm: one row per block (or per warp for narrow rows), fp32 sum of
// squares reduced across the row, then a second pass that scales and stores.
#include "minfer/cuda_utils.cuh"

namespace minfer::cuda {
inline namespace detail {

using namespace cuda_detail;

// N = kVec for 16-byte accesses when sizes and alignment allow, else 1.
// out may be input itself: each thread reads an element before writing it,
// and the row sum orders all reads of a row before any write.
template <int N>
__global__ void __launch_bounds__(kMaxThreads)
    rmsnorm_kernel(scalar_t* out, const scalar_t* input, const scalar_t* weight, int64_t rows,
                   int64_t hidden, int64_t out_row_stride, int64_t input_row_stride, float eps) {
  using P = Pack<N>;
  const int64_t units = hidden / N;
  const auto* w = reinterpret_cast<const P*>(weight);
  for (int64_t row = first_row(); row < rows; row += row_step()) {
    const auto* x = reinterpret_cast<const P*>(input + row * input_row_stride);
    auto* y = reinterpret_cast<P*>(out + row * out_row_stride);

    float sum = 0.f;
    for (int64_t u = threadIdx.x; u < units; u += blockDim.x) {
      const P p = x[u];
#pragma unroll
      for (int j = 0; j < N; ++j) {
        const float f = to_float(p.v[j]);
        sum += f * f;
      }
    }
    const float scale = rsqrtf(row_sum(sum) / float(hidden) + eps);

    for (int64_t u = threadIdx.x; u < units; u += blockDim.x) {
      const P p = x[u], pw = w[u];
      P r;
#pragma unroll
      for (int j = 0; j < N; ++j) r.v[j] = from_float(to_float(p.v[j]) * scale * to_float(pw.v[j]));
      y[u] = r;
    }
  }
}

}  // namespace detail

int rmsnorm(void* out, const void* input, const void* weight, int64_t rows, int64_t hidden,
            int64_t out_row_stride, int64_t input_row_stride, float eps, cudaStream_t stream) {
  if (rows <= 0 || hidden <= 0) return 0;
  auto* o = static_cast<scalar_t*>(out);
  const auto* x = static_cast<const scalar_t*>(input);
  const auto* w = static_cast<const scalar_t*>(weight);
  const bool vec = hidden % kVec == 0 && vec_ok(o, out_row_stride) &&
                   vec_ok(x, input_row_stride) && vec_ok(w, 0);
  if (vec) {
    const RowLaunch l = row_launch(rows, hidden / kVec);
    rmsnorm_kernel<kVec><<<l.grid, l.block, 0, stream>>>(o, x, w, rows, hidden, out_row_stride,
                                                         input_row_stride, eps);
  } else {
    const RowLaunch l = row_launch(rows, hidden);
    rmsnorm_kernel<1><<<l.grid, l.block, 0, stream>>>(o, x, w, rows, hidden, out_row_stride,
                                                      input_row_stride, eps);
  }
  return int(cudaGetLastError());
}

}  // namespace minfer::cuda
