// The element type of this spec (`minfer::scalar_t`) and its fp32 conversions.
//
// Torch-free on purpose: kernel units must not pay for torch headers. Kernels
// do all math in fp32 and round once on store, through to_float/from_float.
// Under nvcc the CUDA types are used (device-only conversions); in plain C++
// the 16-bit types are bit containers with round-to-nearest-even conversions
// written out, so results don't depend on compiler support for _Float16.
#pragma once

#include <cstdint>

#include "minfer/config.h"

#if defined(__CUDACC__)
#if defined(MINFER_DTYPE_FP16)
#include <cuda_fp16.h>
#elif defined(MINFER_DTYPE_BF16)
#include <cuda_bf16.h>
#endif
#else
#include <cstring>
#endif

namespace minfer {
namespace {  // spec-dependent: private to this library (see config.h)

#if defined(__CUDACC__)

#if defined(MINFER_DTYPE_FP16)
using scalar_t = __half;
__device__ __forceinline__ float to_float(scalar_t x) { return __half2float(x); }
__device__ __forceinline__ scalar_t from_float(float x) { return __float2half_rn(x); }
#elif defined(MINFER_DTYPE_BF16)
using scalar_t = __nv_bfloat16;
__device__ __forceinline__ float to_float(scalar_t x) { return __bfloat162float(x); }
__device__ __forceinline__ scalar_t from_float(float x) { return __float2bfloat16_rn(x); }
#else
using scalar_t = float;
__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float from_float(float x) { return x; }
#endif

#else  // host C++

struct Half {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};

namespace detail {

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Drops the low `shift` bits of `m`, rounding to nearest, ties to even.
inline uint32_t shift_round_even(uint32_t m, uint32_t shift) {
  const uint32_t kept = m >> shift;
  const uint32_t rest = m & ((1u << shift) - 1u);
  const uint32_t halfway = 1u << (shift - 1u);
  return kept + (rest > halfway || (rest == halfway && (kept & 1u)));
}

inline float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  const uint32_t man = h & 0x3FFu;
  if (exp == 0x1F) return bits_float(sign | 0x7F800000u | (man << 13));  // inf/nan
  if (exp == 0) {
    // Subnormal (or zero): man * 2^-24 is exact in fp32.
    const float v = float(man) * 0x1p-24f;
    return sign ? -v : v;
  }
  return bits_float(sign | ((exp + 112u) << 23) | (man << 13));
}

inline uint16_t float_to_half(float f) {
  const uint32_t x = float_bits(f);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7FFFFFFFu;
  if (ax > 0x7F800000u) return sign | 0x7E00u | uint16_t((ax >> 13) & 0x1FFu);  // quiet nan
  if (ax >= 0x477FF000u) return sign | 0x7C00u;  // >= 65520 rounds to inf
  if (ax >= 0x38800000u) {
    // Normal half: rebias the exponent; a mantissa carry correctly bumps it.
    return sign | uint16_t(shift_round_even(ax - 0x38000000u, 13));
  }
  // Half subnormal: value / 2^-24, i.e. the full mantissa shifted by 126 - exp.
  const uint32_t exp = ax >> 23;
  if (exp < 102) return sign;  // below 2^-25: rounds to zero
  const uint32_t man = (ax & 0x7FFFFFu) | 0x800000u;
  return sign | uint16_t(shift_round_even(man, 126u - exp));
}

inline float bf16_to_float(uint16_t b) { return bits_float(uint32_t(b) << 16); }

inline uint16_t float_to_bf16(float f) {
  const uint32_t x = float_bits(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((x >> 16) | 0x40u);  // quiet nan
  // Overflow carries into the exponent and lands on inf, as it should.
  return uint16_t((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

}  // namespace detail

#if defined(MINFER_DTYPE_FP16)
using scalar_t = Half;
inline float to_float(Half x) { return detail::half_to_float(x.bits); }
inline Half from_float(float x) { return Half{detail::float_to_half(x)}; }
#elif defined(MINFER_DTYPE_BF16)
using scalar_t = BFloat16;
inline float to_float(BFloat16 x) { return detail::bf16_to_float(x.bits); }
inline BFloat16 from_float(float x) { return BFloat16{detail::float_to_bf16(x)}; }
#else
using scalar_t = float;
inline float to_float(float x) { return x; }
inline float from_float(float x) { return x; }
#endif

#endif  // __CUDACC__

}  // namespace
}  // namespace minfer
