// CUDA fused residual add + rmsnorm, in place: one row per block (or per warp
// for narrow rows).
//
// The norm must use the fp32 sum, not the residual rounded to the dtype. Rows
// up to kRegThreads * kRegMaxVpt packs (hidden 16384 in 16-bit types, 8192 in
// fp32) keep both inputs in registers, so each element is read once and the
// fp32 sum is recomputed from registers for the stores; longer rows take a
// two-pass kernel that reads both inputs again.
#include "minfer/cuda_utils.cuh"

namespace minfer::cuda {
inline namespace detail {

using namespace cuda_detail;

constexpr int kRegThreads = 512;
constexpr int kRegMaxVpt = 4;
// Measured on the H200 at 16384x8192 (bf16, fp32): a target of 512 threads,
// or the weight loaded with the rows (as rmsnorm does: +0.5% in bf16, -0.8%
// in fp32), is no faster here.
constexpr int kTargetThreads = 256;

// Every thread reads all of its elements before the row sum and writes only
// those, so the in-place update never reads what another thread wrote.
template <int N, int VPT>
__global__ void __launch_bounds__(kRegThreads, 2)
    fused_add_rmsnorm_reg_kernel(scalar_t* input, scalar_t* residual, const scalar_t* weight,
                                 int64_t rows, int units, int hidden, int64_t input_row_stride,
                                 int64_t residual_row_stride, float eps) {
  using P = Pack<N>;
  const auto* w = reinterpret_cast<const P*>(weight);
  for (int64_t row = first_row(); row < rows; row += row_step()) {
    auto* x = reinterpret_cast<P*>(input + row * input_row_stride);
    auto* res = reinterpret_cast<P*>(residual + row * residual_row_stride);

    // Both inputs stay packed in registers; the weight is loaded after the
    // barrier (an L1 hit for all but the first rows of an SM).
    P a[VPT], b[VPT];
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const int u = int(threadIdx.x) + k * int(blockDim.x);
      if (u < units) {
        a[k] = x[u];
        b[k] = res[u];
      }
    }
    float sum = 0.f;
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const int u = int(threadIdx.x) + k * int(blockDim.x);
      if (u < units) {
        float f[N], g[N];
        unpack(a[k], f);
        unpack(b[k], g);
#pragma unroll
        for (int j = 0; j < N; ++j) {
          const float s = f[j] + g[j];
          sum += s * s;
        }
      }
    }
    const float scale = rsqrtf(row_sum(sum) / float(hidden) + eps);
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const int u = int(threadIdx.x) + k * int(blockDim.x);
      if (u < units) {
        opaque(a[k]);
        opaque(b[k]);
        float f[N], g[N], ww[N];
        unpack(a[k], f);
        unpack(b[k], g);
        unpack(load_ro(w + u), ww);
#pragma unroll
        for (int j = 0; j < N; ++j) {
          g[j] += f[j];  // the fp32 sum
          f[j] = g[j] * scale * ww[j];
        }
        res[u] = pack(g);
        x[u] = pack(f);
      }
    }
  }
}

// Rows too long for registers: the first pass only reduces; the second
// re-reads both inputs, recomputes the sum bit-identically and writes both
// outputs. Each thread touches the same elements in both passes, so nothing
// is read after another thread wrote it.
template <int N>
__global__ void __launch_bounds__(kMaxThreads)
    fused_add_rmsnorm_two_pass_kernel(scalar_t* input, scalar_t* residual, const scalar_t* weight,
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
      float f[N], g[N];
      unpack(x[u], f);
      unpack(res[u], g);
#pragma unroll
      for (int j = 0; j < N; ++j) {
        const float s = f[j] + g[j];
        sum += s * s;
      }
    }
    const float scale = rsqrtf(row_sum(sum) / float(hidden) + eps);

    for (int64_t u = threadIdx.x; u < units; u += blockDim.x) {
      float f[N], g[N], ww[N];
      unpack(x[u], f);
      unpack(res[u], g);
      unpack(load_ro(w + u), ww);
#pragma unroll
      for (int j = 0; j < N; ++j) {
        g[j] += f[j];  // the fp32 sum
        f[j] = g[j] * scale * ww[j];
      }
      res[u] = pack(g);
      x[u] = pack(f);
    }
  }
}

template <int N>
void launch(scalar_t* x, scalar_t* res, const scalar_t* w, int64_t rows, int64_t hidden,
            int64_t input_row_stride, int64_t residual_row_stride, float eps,
            cudaStream_t stream) {
  const int64_t units = hidden / N;
  const RegPlan plan = reg_plan(rows, units, kRegMaxVpt, kTargetThreads, kRegThreads);
  const dim3 grid = plan.launch.grid, block = plan.launch.block;
  const int u = int(units), h = int(hidden);
  switch (plan.vpt) {
    case 1:
      fused_add_rmsnorm_reg_kernel<N, 1><<<grid, block, 0, stream>>>(
          x, res, w, rows, u, h, input_row_stride, residual_row_stride, eps);
      return;
    case 2:
      fused_add_rmsnorm_reg_kernel<N, 2><<<grid, block, 0, stream>>>(
          x, res, w, rows, u, h, input_row_stride, residual_row_stride, eps);
      return;
    case 4:
      fused_add_rmsnorm_reg_kernel<N, 4><<<grid, block, 0, stream>>>(
          x, res, w, rows, u, h, input_row_stride, residual_row_stride, eps);
      return;
    default: {
      const RowLaunch l = row_launch(rows, units);
      fused_add_rmsnorm_two_pass_kernel<N><<<l.grid, l.block, 0, stream>>>(
          x, res, w, rows, hidden, input_row_stride, residual_row_stride, eps);
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
    launch<kVec>(x, res, w, rows, hidden, input_row_stride, residual_row_stride, eps, stream);
  } else {
    launch<1>(x, res, w, rows, hidden, input_row_stride, residual_row_stride, eps, stream);
  }
  return int(cudaGetLastError());
}

}  // namespace minfer::cuda
