// The gated-activation kernel shared by silu_and_mul and gelu_tanh_and_mul
// (torch-free, nvcc only): out[r, i] = act(x[r, i]) * x[r, d + i].
#pragma once

#include "minfer/cuda_utils.cuh"

namespace minfer::cuda_detail {
inline namespace detail {  // spec-dependent: hidden in this library (see config.h)

// Measured on the H200 at 8192x14336 (bf16, fp32): 4 packs per thread are
// 1% slower; streaming cache hints (ld/st.global.cs) are as fast alone and
// 1-5% slower inside a torch process.
constexpr int kActThreads = 128;
constexpr int kActUpt = 2;

// Grid: x over chunks of a row, each chunk UPT * blockDim.x packs; y over
// rows (a loop covers rows past 65535). Blocks are dispatched x first, so the
// blocks running at once walk the input in address order, as Inductor's 1-D
// pointwise grid does. With rows on x they were spread over thousands of
// rows: at 8192x28672 on the H100, 97-99% of a copy's bandwidth and 0.97-0.99x
// torch.compile's speed; transposed, 101-102% and 0.99-1.01x (docs/
// benchmarks.md, 2026-12-07). A thread issues all
// 2 * UPT loads of its chunk before the arithmetic, so enough bytes are in
// flight to keep the memory busy; consecutive threads take consecutive packs
// (coalesced). The input goes through the read-only cache: the binding
// refuses an out that overlaps it.
template <class Act, int N, int UPT>
__global__ void __launch_bounds__(kActThreads)
    act_and_mul_kernel(scalar_t* out, const scalar_t* input, int64_t rows, int64_t units,
                       int64_t d, int64_t out_row_stride, int64_t input_row_stride) {
  using P = Pack<N>;
  const int64_t chunk = int64_t(UPT) * blockDim.x;
  for (int64_t row = blockIdx.y; row < rows; row += gridDim.y) {
    const scalar_t* in_row = input + row * input_row_stride;
    const auto* x = reinterpret_cast<const P*>(in_row);
    const auto* gate = reinterpret_cast<const P*>(in_row + d);
    auto* y = reinterpret_cast<P*>(out + row * out_row_stride);
    for (int64_t base = int64_t(blockIdx.x) * chunk + threadIdx.x; base < units;
         base += int64_t(gridDim.x) * chunk) {
      P a[UPT], b[UPT];
#pragma unroll
      for (int k = 0; k < UPT; ++k) {
        const int64_t u = base + int64_t(k) * blockDim.x;
        if (u < units) {
          a[k] = load_ro(x + u);
          b[k] = load_ro(gate + u);
        }
      }
#pragma unroll
      for (int k = 0; k < UPT; ++k) {
        const int64_t u = base + int64_t(k) * blockDim.x;
        if (u < units) {
          float f[N], g[N];
          unpack(a[k], f);
          unpack(b[k], g);
#pragma unroll
          for (int j = 0; j < N; ++j) f[j] = Act{}(f[j]) * g[j];
          y[u] = pack(f);
        }
      }
    }
  }
}

template <class Act, int N, int UPT>
void launch_act_and_mul_n(scalar_t* out, const scalar_t* input, int64_t rows, int64_t d,
                          int64_t out_row_stride, int64_t input_row_stride, cudaStream_t stream) {
  const int64_t units = d / N;
  // Few rows (decode): the usual chunks would leave most SMs idle (one row of
  // d = 14336 in 16-bit was 7 blocks of 128 threads, its latency the math of
  // 16 elements per thread, slower than eager's two kernels). Spread each row
  // over about as many blocks as there are SMs: one pack per thread, blocks
  // down to a warp.
  const int64_t sms = sm_count();
  if (rows * ((units + UPT * kActThreads - 1) / (UPT * kActThreads)) < sms) {
    const int64_t per_row = (sms + rows - 1) / rows;
    int64_t threads = round_up((units + per_row - 1) / per_row, kWarp);
    if (threads > kActThreads) threads = kActThreads;
    int64_t chunks = (units + threads - 1) / threads;
    if (chunks > kMaxBlocks) chunks = kMaxBlocks;
    const dim3 grid{unsigned(chunks), unsigned(rows)};  // rows < sms here
    act_and_mul_kernel<Act, N, 1><<<grid, unsigned(threads), 0, stream>>>(
        out, input, rows, units, d, out_row_stride, input_row_stride);
    return;
  }
  int64_t threads = round_up((units + UPT - 1) / UPT, kWarp);
  if (threads > kActThreads) threads = kActThreads;
  int64_t chunks = (units + UPT * threads - 1) / (UPT * threads);
  if (chunks > kMaxBlocks) chunks = kMaxBlocks;
  const int64_t row_blocks = rows < kMaxBlocksY ? rows : kMaxBlocksY;
  const dim3 grid{unsigned(chunks), unsigned(row_blocks)};
  act_and_mul_kernel<Act, N, UPT><<<grid, unsigned(threads), 0, stream>>>(
      out, input, rows, units, d, out_row_stride, input_row_stride);
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
    launch_act_and_mul_n<Act, kVec, kActUpt>(o, x, rows, d, out_row_stride, input_row_stride, stream);
  } else {
    launch_act_and_mul_n<Act, 1, 4>(o, x, rows, d, out_row_stride, input_row_stride, stream);
  }
  return int(cudaGetLastError());
}

}  // namespace detail
}  // namespace minfer::cuda_detail
