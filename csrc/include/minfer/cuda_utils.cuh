// Helpers shared by the CUDA kernel units (torch-free, nvcc only).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>

#include "minfer/dtype.h"
#include "minfer/kernels.h"

namespace minfer::cuda_detail {
inline namespace detail {  // spec-dependent: hidden in this library (see config.h)

// N elements moved as one access; N = kVec makes it a 16-byte load/store
// (LDG.E.128/STG.E.128 in the SASS, for every dtype).
template <int N>
struct alignas(sizeof(scalar_t) * N) Pack {
  scalar_t v[N];
};
constexpr int kVec = 16 / sizeof(scalar_t);

// The plain integer type of a pack's size, for the read-only-cache load.
template <int Bytes>
struct Raw;
template <>
struct Raw<16> {
  using type = uint4;
};
template <>
struct Raw<8> {
  using type = uint2;
};
template <>
struct Raw<4> {
  using type = unsigned int;
};
template <>
struct Raw<2> {
  using type = unsigned short;
};

// A load through the read-only (non-coherent) cache, for data no thread of
// the kernel writes (weights, the input of act_and_mul): one
// LDG.E.*.CONSTANT of the whole pack. (Streaming hints, ld/st.global.cs,
// were measured too: no faster in isolation, slower inside a torch process.)
template <int N>
__device__ __forceinline__ Pack<N> load_ro(const Pack<N>* p) {
  using R = typename Raw<sizeof(Pack<N>)>::type;
  const R r = __ldg(reinterpret_cast<const R*>(p));
  Pack<N> out;
  memcpy(&out, &r, sizeof out);
  return out;
}

// A pack's elements in fp32, and a pack from fp32 values rounded to nearest
// even, two 16-bit elements per 32-bit word: bf16 widens by bit placement
// (exact: one shift or one AND per element, no PRMT and no unpacked copies of
// the loaded words), fp16 by HADD2.F32; both narrow with one F2FP per pair.
template <int N>
__device__ __forceinline__ void unpack(const Pack<N>& p, float (&f)[N]) {
#if defined(MINFER_DTYPE_FP16) || defined(MINFER_DTYPE_BF16)
  if constexpr (N % 2 == 0) {
    uint32_t w[N / 2];
    memcpy(w, &p, sizeof w);
#pragma unroll
    for (int i = 0; i < N / 2; ++i) {
#if defined(MINFER_DTYPE_BF16)
      f[2 * i] = __uint_as_float(w[i] << 16);
      f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
#else
      __half2 h;
      memcpy(&h, &w[i], sizeof h);
      const float2 v = __half22float2(h);
      f[2 * i] = v.x;
      f[2 * i + 1] = v.y;
#endif
    }
  } else
#endif
  {
#pragma unroll
    for (int i = 0; i < N; ++i) f[i] = to_float(p.v[i]);
  }
}

template <int N>
__device__ __forceinline__ Pack<N> pack(const float (&f)[N]) {
  Pack<N> p;
#if defined(MINFER_DTYPE_FP16) || defined(MINFER_DTYPE_BF16)
  if constexpr (N % 2 == 0) {
#pragma unroll
    for (int i = 0; i < N / 2; ++i) {
#if defined(MINFER_DTYPE_BF16)
      const __nv_bfloat162 h = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
#else
      const __half2 h = __floats2half2_rn(f[2 * i], f[2 * i + 1]);
#endif
      memcpy(&p.v[2 * i], &h, sizeof h);
    }
  } else
#endif
  {
#pragma unroll
    for (int i = 0; i < N; ++i) p.v[i] = from_float(f[i]);
  }
  return p;
}

// Makes the compiler forget what it knows about p's value, at no cost in
// instructions. Kernels that keep a row in registers across a barrier call it
// on the raw packs after the barrier: the elements are then converted to fp32
// again from the packed words (one shift or PRMT per element) instead of
// being kept converted, which would take twice the registers in 16-bit types.
template <int N>
__device__ __forceinline__ void opaque(Pack<N>& p) {
  if constexpr (sizeof(Pack<N>) % 4 == 0) {
    uint32_t w[sizeof(Pack<N>) / 4];
    memcpy(w, &p, sizeof w);
#pragma unroll
    for (int i = 0; i < int(sizeof(Pack<N>) / 4); ++i) asm volatile("" : "+r"(w[i]));
    memcpy(&p, w, sizeof w);
  } else {
    unsigned short h;
    memcpy(&h, &p, sizeof h);
    asm volatile("" : "+h"(h));
    memcpy(&p, &h, sizeof h);
  }
}

constexpr int kMaxThreads = 1024;
constexpr int kWarp = 32;
// Kernels loop over rows, so the grid need not cover them; this bound keeps
// gridDim.x legal (< 2^31) while leaving plenty of blocks to fill the GPU.
constexpr int64_t kMaxBlocks = int64_t(1) << 20;
constexpr int64_t kMaxBlocksY = 65535;

// True when every row (the first at `p`, the next `row_stride` elements on)
// starts 16-byte aligned; the caller also needs the row length % kVec == 0.
inline bool vec_ok(const void* p, int64_t row_stride) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0 && row_stride % kVec == 0;
}

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// The current device's SM count, asked of the runtime once per device (the
// launch path of every call must stay cheap on the host).
inline int sm_count() {
  constexpr int kDevices = 64;
  static std::atomic<int> cache[kDevices];
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= kDevices) {
    (void)cudaGetLastError();  // leave no error for the launch check to report
    return 132;
  }
  int sms = cache[device].load(std::memory_order_relaxed);
  if (sms == 0) {
    if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
        sms <= 0) {
      (void)cudaGetLastError();
      return 132;
    }
    cache[device].store(sms, std::memory_order_relaxed);
  }
  return sms;
}

// How many blocks of `threads` threads of `Kernel` one SM holds at once (its
// registers and shared memory decide), asked of the runtime once per kernel
// and block size. Kernels that loop over their work size their grid by it: a
// grid sized by threads alone (2048 / threads per SM) ran rope in two waves
// at 64 registers a thread, half its blocks waiting for the other half.
template <auto Kernel>
inline int blocks_per_sm(int threads) {
  static std::atomic<int> cache[kMaxThreads / kWarp + 1];
  const int slot = (threads + kWarp - 1) / kWarp;
  int blocks = cache[slot].load(std::memory_order_relaxed);
  if (blocks == 0) {
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, Kernel, threads, 0) !=
            cudaSuccess ||
        blocks <= 0) {
      (void)cudaGetLastError();  // leave no error for the launch check to report
      return 1;
    }
    cache[slot].store(blocks, std::memory_order_relaxed);
  }
  return blocks;
}

// One launch shape for row-wise kernels: blockDim.x threads share a row.
// Rows no wider than a warp get a warp each, several rows to a block, so
// narrow rows (per-head norms, tiny d) still fill the SMs.
struct RowLaunch {
  dim3 grid, block;
};
inline RowLaunch row_launch(int64_t rows, int64_t threads_per_row) {
  int64_t tx = round_up(threads_per_row, kWarp);
  tx = tx < kWarp ? kWarp : (tx > kMaxThreads ? kMaxThreads : tx);
  const int64_t ty = tx == kWarp ? 4 : 1;
  int64_t blocks = (rows + ty - 1) / ty;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  return {dim3(unsigned(blocks)), dim3(unsigned(tx), unsigned(ty))};
}

// Rows kept in registers: each thread holds `vpt` packs of its row (the
// units threadIdx.x + k * blockDim.x, k < vpt), so a row is read from global
// memory once. vpt is the smallest of 1, 2, 4, ... max_vpt that keeps a row
// within target_threads threads (more loads in flight per thread, blocks
// small enough for several to share an SM); the longest rows take up to
// max_threads. vpt = 0: the row does not fit, use the two-pass kernel.
struct RegPlan {
  int vpt;
  RowLaunch launch;
};
inline RegPlan reg_plan(int64_t rows, int64_t units, int max_vpt, int64_t target_threads,
                        int64_t max_threads) {
  int vpt = 1;
  while (vpt < max_vpt && (units + vpt - 1) / vpt > target_threads) vpt *= 2;
  const int64_t threads = (units + vpt - 1) / vpt;
  if (threads > max_threads) return {0, {}};
  return {vpt, row_launch(rows, threads)};
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
