// Helpers shared by the CUDA kernel units (torch-free, nvcc only).
#pragma once

#include <cstdint>

#include "minfer/dtype.h"
#include "minfer/kernels.h"

namespace minfer::cuda_detail {
inline namespace detail {  // spec-dependent: hidden in this library (see config.h)

// N elements moved as one access; N = kVec makes it a 16-byte load/store.
template <int N>
struct alignas(sizeof(scalar_t) * N) Pack {
  scalar_t v[N];
};
constexpr int kVec = 16 / sizeof(scalar_t);

constexpr int kMaxThreads = 1024;
constexpr int kWarp = 32;
// Kernels loop over rows, so the grid need not cover them; this bound keeps
// gridDim.x legal (< 2^31) while leaving plenty of blocks to fill the GPU.
constexpr int64_t kMaxBlocks = int64_t(1) << 20;

// True when every row (the first at `p`, the next `row_stride` elements on)
// starts 16-byte aligned; the caller also needs the row length % kVec == 0.
inline bool vec_ok(const void* p, int64_t row_stride) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0 && row_stride % kVec == 0;
}

// One launch shape for row-wise kernels: blockDim.x threads share a row.
// Rows no wider than a warp get a warp each, several rows to a block, so
// narrow rows (per-head norms, tiny d) still fill the SMs.
struct RowLaunch {
  dim3 grid, block;
};
inline RowLaunch row_launch(int64_t rows, int64_t units_per_row) {
  int64_t tx = (units_per_row + kWarp - 1) / kWarp * kWarp;
  tx = tx < kWarp ? kWarp : (tx > kMaxThreads ? kMaxThreads : tx);
  const int64_t ty = tx == kWarp ? 4 : 1;
  int64_t blocks = (rows + ty - 1) / ty;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  return {dim3(unsigned(blocks)), dim3(unsigned(tx), unsigned(ty))};
}

// This thread's first row and the stride of the row loop for row_launch.
__device__ __forceinline__ int64_t first_row() {
  return int64_t(blockIdx.x) * blockDim.y + threadIdx.y;
}
__device__ __forceinline__ int64_t row_step() { return int64_t(gridDim.x) * blockDim.y; }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over the threads sharing a row (see row_launch), returned to all of
// them. With blockDim.x > 32 the block holds one row, so every thread of the
// block takes the same number of row iterations and the barriers are safe.
__device__ __forceinline__ float row_sum(float v) {
  v = warp_sum(v);
  if (blockDim.x == kWarp) return v;
  __shared__ float partial[kMaxThreads / kWarp];
  const unsigned lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < blockDim.x / kWarp ? partial[lane] : 0.f;
  v = warp_sum(v);
  __syncthreads();  // partial is rewritten by the next row
  return v;
}

}  // namespace detail
}  // namespace minfer::cuda_detail
