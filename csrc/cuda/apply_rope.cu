// CUDA NeoX-style rotary embedding, in place on q and k.
//
// Grid: x over tokens, y over groups of heads_per_block heads (q heads first,
// then k heads). The cos/sin of a token depend only on the frequency index,
// so a block computes them once into shared memory, a chunk of kThreads
// frequencies at a time (any head_dim fits), and applies them to its heads.
#include "minfer/cuda_utils.cuh"
#include "minfer/rope.h"

namespace minfer::cuda {
inline namespace detail {

using namespace cuda_detail;

constexpr int kThreads = 128;
constexpr int64_t kMaxBlocksY = 65535;
static_assert(kThreads % kVec == 0, "frequency chunks must hold whole vectors");

// N frequencies per thread: N = kVec gives 16-byte accesses when head_dim
// and alignment allow, else N = 1.
template <int N>
__global__ void __launch_bounds__(kThreads)
    rope_kernel(scalar_t* q, scalar_t* k, const int64_t* positions, int64_t tokens,
                int64_t q_heads, int64_t k_heads, int64_t head_dim, int64_t q_token_stride,
                int64_t q_head_stride, int64_t k_token_stride, int64_t k_head_stride,
                double theta, int heads_per_block) {
  using P = Pack<N>;
  __shared__ float cos_s[kThreads], sin_s[kThreads];
  const int64_t half = head_dim / 2;
  const int64_t heads = q_heads + k_heads;
  // All loop bounds below are uniform across the block, so the barriers are safe.
  for (int64_t t = blockIdx.x; t < tokens; t += gridDim.x) {
    const float pos = float(positions[t]);
    for (int64_t h0 = int64_t(blockIdx.y) * heads_per_block; h0 < heads;
         h0 += int64_t(gridDim.y) * heads_per_block) {
      const int nh = int(heads - h0 < heads_per_block ? heads - h0 : heads_per_block);
      for (int64_t i0 = 0; i0 < half; i0 += kThreads) {
        const int chunk = int(half - i0 < kThreads ? half - i0 : kThreads);  // % N == 0
        if (int(threadIdx.x) < chunk) {
          // sincosf, not __sincosf: angles reach thousands of radians, where
          // only the full range reduction is accurate.
          sincosf(pos * rope_inv_freq(theta, i0 + threadIdx.x, head_dim), &sin_s[threadIdx.x],
                  &cos_s[threadIdx.x]);
        }
        __syncthreads();
        // Consecutive threads take consecutive elements of a head: coalesced.
        const int units = chunk / N;
        for (int idx = threadIdx.x; idx < nh * units; idx += kThreads) {
          const int64_t h = h0 + idx / units;
          const int j = idx % units * N;
          scalar_t* x = h < q_heads ? q + t * q_token_stride + h * q_head_stride
                                    : k + t * k_token_stride + (h - q_heads) * k_head_stride;
          auto* lo = reinterpret_cast<P*>(x + i0 + j);
          auto* hi = reinterpret_cast<P*>(x + half + i0 + j);
          const P a = *lo, b = *hi;
          P ra, rb;
#pragma unroll
          for (int e = 0; e < N; ++e) {
            const float x1 = to_float(a.v[e]), x2 = to_float(b.v[e]);
            const float c = cos_s[j + e], s = sin_s[j + e];
            ra.v[e] = from_float(x1 * c - x2 * s);
            rb.v[e] = from_float(x2 * c + x1 * s);
          }
          *lo = ra;
          *hi = rb;
        }
        __syncthreads();  // cos_s/sin_s are rewritten by the next chunk
      }
    }
  }
}

}  // namespace detail

int apply_rope(void* q, void* k, const int64_t* positions, int64_t tokens, int64_t q_heads,
               int64_t k_heads, int64_t head_dim, int64_t q_token_stride, int64_t q_head_stride,
               int64_t k_token_stride, int64_t k_head_stride, double theta, cudaStream_t stream) {
  const int64_t heads = q_heads + k_heads;
  if (tokens <= 0 || heads <= 0 || head_dim <= 1) return 0;
  auto* qs = static_cast<scalar_t*>(q);
  auto* ks = static_cast<scalar_t*>(k);
  const int64_t half = head_dim / 2;
  // Every head's halves must start 16-byte aligned (kThreads % kVec == 0
  // keeps the chunks whole vectors).
  const bool vec = half % kVec == 0 && vec_ok(qs, q_token_stride) && vec_ok(qs, q_head_stride) &&
                   vec_ok(ks, k_token_stride) && vec_ok(ks, k_head_stride);
  // About two head-chunk units per thread: enough heads to share the block's
  // cos/sin work, few enough to leave blocks for small token counts.
  const int64_t units = (half < kThreads ? half : kThreads) / (vec ? kVec : 1);
  int64_t heads_per_block = 2 * kThreads / units;
  if (heads_per_block < 1) heads_per_block = 1;
  if (heads_per_block > heads) heads_per_block = heads;
  int64_t blocks_y = (heads + heads_per_block - 1) / heads_per_block;
  if (blocks_y > kMaxBlocksY) blocks_y = kMaxBlocksY;
  const int64_t blocks_x = tokens < kMaxBlocks ? tokens : kMaxBlocks;
  const dim3 grid(static_cast<unsigned>(blocks_x), static_cast<unsigned>(blocks_y));
  if (vec) {
    rope_kernel<kVec><<<grid, kThreads, 0, stream>>>(qs, ks, positions, tokens, q_heads, k_heads,
                                                     head_dim, q_token_stride, q_head_stride,
                                                     k_token_stride, k_head_stride, theta,
                                                     int(heads_per_block));
  } else {
    rope_kernel<1><<<grid, kThreads, 0, stream>>>(qs, ks, positions, tokens, q_heads, k_heads,
                                                  head_dim, q_token_stride, q_head_stride,
                                                  k_token_stride, k_head_stride, theta,
                                                  int(heads_per_block));
  }
  return int(cudaGetLastError());
}

}  // namespace minfer::cuda
