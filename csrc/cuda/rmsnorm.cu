// CUDA rmsnorm: one row per block (or per warp for narrow rows), fp32 sum of
// squares reduced across the row, then the scaled row is stored.
//
// Rows up to kRegThreads * kRegMaxVpt packs (hidden 32768 in 16-bit types,
// 16384 in fp32) stay in registers between the two steps, so each element is
// read from global memory once; longer rows take a two-pass kernel that reads
// the row again (mostly from L2).
#include "minfer/cuda_utils.cuh"

namespace minfer::cuda {
inline namespace detail {

using namespace cuda_detail;

constexpr int kRegThreads = 512;
constexpr int kRegMaxVpt = 8;
// Measured on the H200 at 16384x8192 (bf16, fp32): a target of 128 threads
// per row is no faster; loading the weight after the barrier instead costs
// 2-3% (its latency is exposed once per row).
constexpr int kTargetThreads = 256;

// N = kVec for 16-byte accesses when sizes and alignment allow, else 1; each
// thread holds VPT packs. out may be input itself: every thread reads all of
// its elements before the row sum, which orders all reads of a row before any
// write. The weight goes through the read-only cache (it never aliases out)
// and is loaded with the row, so its latency hides behind the row's.
template <int N, int VPT>
__global__ void __launch_bounds__(kRegThreads, VPT >= 8 ? 1 : 2)
    rmsnorm_reg_kernel(scalar_t* out, const scalar_t* input, const scalar_t* weight, int64_t rows,
                       int units, int hidden, int64_t out_row_stride, int64_t input_row_stride,
                       float eps) {
  using P = Pack<N>;
  const auto* w = reinterpret_cast<const P*>(weight);
  for (int64_t row = first_row(); row < rows; row += row_step()) {
    const auto* x = reinterpret_cast<const P*>(input + row * input_row_stride);
    auto* y = reinterpret_cast<P*>(out + row * out_row_stride);

    // Every load of the row is issued before any arithmetic waits on one.
    P a[VPT], pw[VPT];
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const int u = int(threadIdx.x) + k * int(blockDim.x);
      if (u < units) {
        a[k] = x[u];
        pw[k] = load_ro(w + u);
      }
    }
    float sum = 0.f;
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const int u = int(threadIdx.x) + k * int(blockDim.x);
      if (u < units) {
        float f[N];
        unpack(a[k], f);
#pragma unroll
        for (int j = 0; j < N; ++j) sum += f[j] * f[j];
      }
    }
    const float scale = rsqrtf(row_sum(sum) / float(hidden) + eps);
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const int u = int(threadIdx.x) + k * int(blockDim.x);
      if (u < units) {
        opaque(a[k]);
        opaque(pw[k]);
        float f[N], g[N];
        unpack(a[k], f);
        unpack(pw[k], g);
#pragma unroll
        for (int j = 0; j < N; ++j) f[j] = f[j] * scale * g[j];
        y[u] = pack(f);
      }
    }
  }
}

// Rows too long for registers: the first pass reduces, the second re-reads
// the row, scales and stores. Each thread touches the same elements in both
// passes, so out == input is safe here too.
template <int N>
__global__ void __launch_bounds__(kMaxThreads)
    rmsnorm_two_pass_kernel(scalar_t* out, const scalar_t* input, const scalar_t* weight,
                            int64_t rows, int64_t hidden, int64_t out_row_stride,
                            int64_t input_row_stride, float eps) {
  using P = Pack<N>;
  const int64_t units = hidden / N;
  const auto* w = reinterpret_cast<const P*>(weight);
  for (int64_t row = first_row(); row < rows; row += row_step()) {
    const auto* x = reinterpret_cast<const P*>(input + row * input_row_stride);
    auto* y = reinterpret_cast<P*>(out + row * out_row_stride);

    float sum = 0.f;
    for (int64_t u = threadIdx.x; u < units; u += blockDim.x) {
      float f[N];
      unpack(x[u], f);
#pragma unroll
      for (int j = 0; j < N; ++j) sum += f[j] * f[j];
    }
    const float scale = rsqrtf(row_sum(sum) / float(hidden) + eps);

    for (int64_t u = threadIdx.x; u < units; u += blockDim.x) {
      float f[N], g[N];
      unpack(x[u], f);
      unpack(load_ro(w + u), g);
#pragma unroll
      for (int j = 0; j < N; ++j) f[j] = f[j] * scale * g[j];
      y[u] = pack(f);
    }
  }
}

template <int N>
void launch(scalar_t* o, const scalar_t* x, const scalar_t* w, int64_t rows, int64_t hidden,
            int64_t out_row_stride, int64_t input_row_stride, float eps, cudaStream_t stream) {
  const int64_t units = hidden / N;
  const RegPlan plan = reg_plan(rows, units, kRegMaxVpt, kTargetThreads, kRegThreads);
  const dim3 grid = plan.launch.grid, block = plan.launch.block;
  const int u = int(units), h = int(hidden);
  switch (plan.vpt) {
    case 1:
      rmsnorm_reg_kernel<N, 1><<<grid, block, 0, stream>>>(o, x, w, rows, u, h, out_row_stride,
                                                           input_row_stride, eps);
      return;
    case 2:
      rmsnorm_reg_kernel<N, 2><<<grid, block, 0, stream>>>(o, x, w, rows, u, h, out_row_stride,
                                                           input_row_stride, eps);
      return;
    case 4:
      rmsnorm_reg_kernel<N, 4><<<grid, block, 0, stream>>>(o, x, w, rows, u, h, out_row_stride,
                                                           input_row_stride, eps);
      return;
    case 8:
      rmsnorm_reg_kernel<N, 8><<<grid, block, 0, stream>>>(o, x, w, rows, u, h, out_row_stride,
                                                           input_row_stride, eps);
      return;
    default: {
      const RowLaunch l = row_launch(rows, units);
      rmsnorm_two_pass_kernel<N><<<l.grid, l.block, 0, stream>>>(o, x, w, rows, hidden,
                                                                 out_row_stride, input_row_stride,
                                                                 eps);
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
    launch<kVec>(o, x, w, rows, hidden, out_row_stride, input_row_stride, eps, stream);
  } else {
    launch<1>(o, x, w, rows, hidden, out_row_stride, input_row_stride, eps, stream);
  }
  return int(cudaGetLastError());
}

}  // namespace minfer::cuda
