// CUDA NeoX-style rotary embedding, in place on q and k.
//
// One block per token (a loop covers the rest): its threads first load their
// share of the token's heads (q heads, then k heads) into registers, then
// compute the token's cos/sin into shared memory while those loads are in
// flight, then rotate and store. The inverse frequencies, which depend only
// on head_dim, are computed once per block. head_dim up to 2 * kMaxHalf takes
// this path; longer heads (or more than 2^30 packs per token) take a chunked
// kernel.
#include "minfer/cuda_utils.cuh"
#include "minfer/rope.h"

namespace minfer::cuda {
inline namespace detail {

using namespace cuda_detail;

constexpr int kThreads = 256;
constexpr int kMaxHalf = 512;  // at most 2 frequencies per thread (threads >= half / 2)
// (lo, hi) pack pairs a thread holds per pass. Measured on the H200 at 16384
// tokens x (32+8) x 128: 2 beats 4 by 1-2%; streaming cache hints do not help.
constexpr int kUpt = 2;

__device__ __forceinline__ scalar_t* head_ptr(scalar_t* q, scalar_t* k, int64_t t, int64_t h,
                                              int64_t q_heads, int64_t q_token_stride,
                                              int64_t q_head_stride, int64_t k_token_stride,
                                              int64_t k_head_stride) {
  return h < q_heads ? q + t * q_token_stride + h * q_head_stride
                     : k + t * k_token_stride + (h - q_heads) * k_head_stride;
}

// N frequencies per pack: N = kVec gives 16-byte accesses when head_dim and
// alignment allow, else N = 1. A unit is one (lo, hi) pair of packs of one
// head; consecutive threads take consecutive units of a head (coalesced).
// Thread i computes the cos/sin of frequencies i and i + blockDim.x; their
// inverse frequencies (a double-precision power each) are computed once, for
// the block's first token, after that token's loads are issued.
template <int N>
__global__ void __launch_bounds__(kThreads)
    rope_kernel(scalar_t* q, scalar_t* k, const int64_t* positions, int64_t tokens,
                int64_t q_heads, int64_t k_heads, int half, int64_t q_token_stride,
                int64_t q_head_stride, int64_t k_token_stride, int64_t k_head_stride,
                double theta) {
  using P = Pack<N>;
  // Two tables, alternating by token: a token's table is written while a slow
  // thread may still read the previous token's, so one barrier per token (the
  // one after the writes) is enough. A thread writing token t's table has
  // passed token t-1's barrier, which every thread reaches only after its
  // reads of token t-2's table, the one being overwritten.
  __shared__ float cos_s[2][kMaxHalf], sin_s[2][kMaxHalf];
  int buffer = 0;
  const int head_dim = 2 * half;
  const int units_per_head = half / N;
  const int units = int((q_heads + k_heads) * units_per_head);  // < 2^30 (see launch)
  const int pass = kUpt * int(blockDim.x);
  float inv[2] = {0.f, 0.f};
  bool first = true;
  // All loop bounds below are uniform across the block, so the barriers are safe.
  for (int64_t t = blockIdx.x; t < tokens; t += gridDim.x) {
    const int64_t position = positions[t];
    for (int base = 0; base < units; base += pass) {
      P lo[kUpt], hi[kUpt];
      scalar_t* x[kUpt];
      int j[kUpt];
#pragma unroll
      for (int e = 0; e < kUpt; ++e) {
        const int u = base + int(threadIdx.x) + e * int(blockDim.x);
        x[e] = nullptr;
        if (u < units) {
          const int h = u / units_per_head;
          j[e] = (u - h * units_per_head) * N;
          x[e] = head_ptr(q, k, t, h, q_heads, q_token_stride, q_head_stride, k_token_stride,
                          k_head_stride) +
                 j[e];
          lo[e] = *reinterpret_cast<const P*>(x[e]);
          hi[e] = *reinterpret_cast<const P*>(x[e] + half);
        }
      }
      if (base == 0) {
        if (first) {
#pragma unroll
          for (int m = 0; m < 2; ++m) {
            const int i = int(threadIdx.x) + m * int(blockDim.x);
            if (i < half) inv[m] = rope_inv_freq(theta, i, head_dim);
          }
          first = false;
        }
        buffer ^= 1;
        // sincosf, not __sincosf: angles reach thousands of radians, where
        // only the full range reduction is accurate. The angle is the fp32
        // product of the fp32-rounded position, as the reference computes it.
        const float pos = float(position);
#pragma unroll
        for (int m = 0; m < 2; ++m) {
          const int i = int(threadIdx.x) + m * int(blockDim.x);
          if (i < half) sincosf(pos * inv[m], &sin_s[buffer][i], &cos_s[buffer][i]);
        }
        __syncthreads();
      }
#pragma unroll
      for (int e = 0; e < kUpt; ++e) {
        if (x[e] != nullptr) {
          float x1[N], x2[N], r1[N], r2[N];
          unpack(lo[e], x1);
          unpack(hi[e], x2);
#pragma unroll
          for (int m = 0; m < N; ++m) {
            const float c = cos_s[buffer][j[e] + m], s = sin_s[buffer][j[e] + m];
            r1[m] = x1[m] * c - x2[m] * s;
            r2[m] = x2[m] * c + x1[m] * s;
          }
          *reinterpret_cast<P*>(x[e]) = pack(r1);
          *reinterpret_cast<P*>(x[e] + half) = pack(r2);
        }
      }
    }
  }
}

// head_dim > 2 * kMaxHalf (or huge head counts): grid x over tokens, y over groups of
// heads_per_block heads; the cos/sin of a token are computed into shared
// memory a chunk of kThreads frequencies at a time and applied to its heads.
template <int N>
__global__ void __launch_bounds__(kThreads)
    rope_chunked_kernel(scalar_t* q, scalar_t* k, const int64_t* positions, int64_t tokens,
                        int64_t q_heads, int64_t k_heads, int64_t head_dim,
                        int64_t q_token_stride, int64_t q_head_stride, int64_t k_token_stride,
                        int64_t k_head_stride, double theta, int heads_per_block) {
  using P = Pack<N>;
  __shared__ float cos_s[kThreads], sin_s[kThreads];
  const int64_t half = head_dim / 2;
  const int64_t heads = q_heads + k_heads;
  for (int64_t t = blockIdx.x; t < tokens; t += gridDim.x) {
    const float pos = float(positions[t]);
    for (int64_t h0 = int64_t(blockIdx.y) * heads_per_block; h0 < heads;
         h0 += int64_t(gridDim.y) * heads_per_block) {
      const int nh = int(heads - h0 < heads_per_block ? heads - h0 : heads_per_block);
      for (int64_t i0 = 0; i0 < half; i0 += kThreads) {
        const int chunk = int(half - i0 < kThreads ? half - i0 : kThreads);  // % N == 0
        if (int(threadIdx.x) < chunk) {
          sincosf(pos * rope_inv_freq(theta, i0 + threadIdx.x, head_dim), &sin_s[threadIdx.x],
                  &cos_s[threadIdx.x]);
        }
        __syncthreads();
        const int units = chunk / N;
        for (int idx = threadIdx.x; idx < nh * units; idx += kThreads) {
          const int64_t h = h0 + idx / units;
          const int j = idx % units * N;
          scalar_t* x = head_ptr(q, k, t, h, q_heads, q_token_stride, q_head_stride,
                                 k_token_stride, k_head_stride);
          auto* lo = reinterpret_cast<P*>(x + i0 + j);
          auto* hi = reinterpret_cast<P*>(x + half + i0 + j);
          float x1[N], x2[N], r1[N], r2[N];
          unpack(*lo, x1);
          unpack(*hi, x2);
#pragma unroll
          for (int e = 0; e < N; ++e) {
            const float c = cos_s[j + e], s = sin_s[j + e];
            r1[e] = x1[e] * c - x2[e] * s;
            r2[e] = x2[e] * c + x1[e] * s;
          }
          *lo = pack(r1);
          *hi = pack(r2);
        }
        __syncthreads();  // cos_s/sin_s are rewritten by the next chunk
      }
    }
  }
}

template <int N>
void launch(scalar_t* q, scalar_t* k, const int64_t* positions, int64_t tokens, int64_t q_heads,
            int64_t k_heads, int64_t head_dim, int64_t q_token_stride, int64_t q_head_stride,
            int64_t k_token_stride, int64_t k_head_stride, double theta, cudaStream_t stream) {
  const int64_t heads = q_heads + k_heads;
  const int64_t half = head_dim / 2;
  if (half <= kMaxHalf && heads * (half / N) < (int64_t(1) << 30)) {
    // Threads to hold a token's units in one pass, at least enough for the
    // cos/sin of its frequencies (a loop covers the rest beyond kThreads).
    const int64_t units = heads * (half / N);
    int64_t threads = round_up((units + kUpt - 1) / kUpt, kWarp);
    const int64_t trig = round_up(half, kWarp);  // one frequency per thread where it fits
    if (threads < trig) threads = trig;
    if (threads > kThreads) threads = kThreads;  // >= kMaxHalf / 2: two at most
    // At most as many blocks as fit on the GPU at once (one wave), each
    // looping over tokens, so the inverse frequencies are computed once per
    // block; and the tokens spread evenly over them, so that no block has a
    // round more than the others: 16384 tokens on 792 blocks would leave 544
    // of them a 21st token while the rest sat idle, where 781 blocks of 21
    // tokens do the same rounds with no tail.
    const int64_t fit = int64_t(sm_count()) * blocks_per_sm<rope_kernel<N>>(int(threads));
    const int64_t rounds = (tokens + fit - 1) / fit;
    const int64_t blocks_x = (tokens + rounds - 1) / rounds;
    rope_kernel<N><<<unsigned(blocks_x), unsigned(threads), 0, stream>>>(
        q, k, positions, tokens, q_heads, k_heads, int(half), q_token_stride, q_head_stride,
        k_token_stride, k_head_stride, theta);
    return;
  }
  // About two head-chunk units per thread: enough heads to share the block's
  // cos/sin work, few enough to leave blocks for small token counts.
  const int64_t blocks_x = tokens < kMaxBlocks ? tokens : kMaxBlocks;
  const int64_t units = (half < kThreads ? half : kThreads) / N;
  int64_t heads_per_block = 2 * kThreads / units;
  if (heads_per_block < 1) heads_per_block = 1;
  if (heads_per_block > heads) heads_per_block = heads;
  int64_t blocks_y = (heads + heads_per_block - 1) / heads_per_block;
  if (blocks_y > kMaxBlocksY) blocks_y = kMaxBlocksY;
  const dim3 grid{unsigned(blocks_x), unsigned(blocks_y)};
  rope_chunked_kernel<N><<<grid, kThreads, 0, stream>>>(
      q, k, positions, tokens, q_heads, k_heads, head_dim, q_token_stride, q_head_stride,
      k_token_stride, k_head_stride, theta, int(heads_per_block));
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
  // keeps the chunked kernel's chunks whole vectors).
  static_assert(kThreads % kVec == 0, "frequency chunks must hold whole vectors");
  const bool vec = half % kVec == 0 && vec_ok(qs, q_token_stride) && vec_ok(qs, q_head_stride) &&
                   vec_ok(ks, k_token_stride) && vec_ok(ks, k_head_stride);
  if (vec) {
    launch<kVec>(qs, ks, positions, tokens, q_heads, k_heads, head_dim, q_token_stride,
                 q_head_stride, k_token_stride, k_head_stride, theta, stream);
  } else {
    launch<1>(qs, ks, positions, tokens, q_heads, k_heads, head_dim, q_token_stride, q_head_stride,
              k_token_stride, k_head_stride, theta, stream);
  }
  return int(cudaGetLastError());
}

}  // namespace minfer::cuda
