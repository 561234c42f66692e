// Torch-free entry points of the kernel units, called by the binding units.
//
// Each spec library holds one dtype, so pointers are untyped: they point to
// elements of the spec's dtype (see dtype.h), except `positions` (int64).
// Sizes and strides count elements. Rows are strided; the last dimension is
// contiguous. Callers return early on empty inputs, but zero rows/tokens are
// also a no-op here.
//
// The CUDA entry points launch on `stream` and return the launch's
// cudaError_t as an int (0 = cudaSuccess), so this header needs no CUDA one.
#pragma once

#include <cstdint>

#include "minfer/config.h"

#if defined(MINFER_CUDA) || defined(__CUDACC__)
// The runtime's own spelling of cudaStream_t; redeclaring an identical
// typedef is legal C++, and spares g++ units the CUDA runtime headers.
typedef struct CUstream_st* cudaStream_t;
#endif

namespace minfer {

namespace cpu {

// out = input * rsqrt(mean(input^2) + eps) * weight, per row of `hidden`.
MINFER_HIDDEN void rmsnorm(void* out, const void* input, const void* weight, int64_t rows,
                           int64_t hidden, int64_t out_row_stride, int64_t input_row_stride,
                           float eps);

// s = input + residual (fp32); residual = s; input = rmsnorm(s) * weight.
MINFER_HIDDEN void fused_add_rmsnorm(void* input, void* residual, const void* weight, int64_t rows,
                                     int64_t hidden, int64_t input_row_stride,
                                     int64_t residual_row_stride, float eps);

// out[r, :d] = act(input[r, :d]) * input[r, d:2d].
MINFER_HIDDEN void silu_and_mul(void* out, const void* input, int64_t rows, int64_t d,
                                int64_t out_row_stride, int64_t input_row_stride);
MINFER_HIDDEN void gelu_tanh_and_mul(void* out, const void* input, int64_t rows, int64_t d,
                                     int64_t out_row_stride, int64_t input_row_stride);

// NeoX rotary embedding, in place, on q [tokens, q_heads, head_dim] and
// k [tokens, k_heads, head_dim]; head_dim is even.
MINFER_HIDDEN void apply_rope(void* q, void* k, const int64_t* positions, int64_t tokens,
                              int64_t q_heads, int64_t k_heads, int64_t head_dim,
                              int64_t q_token_stride, int64_t q_head_stride,
                              int64_t k_token_stride, int64_t k_head_stride, double theta);

}  // namespace cpu

#if defined(MINFER_CUDA) || defined(__CUDACC__)

namespace cuda {

MINFER_HIDDEN int rmsnorm(void* out, const void* input, const void* weight, int64_t rows,
                          int64_t hidden, int64_t out_row_stride, int64_t input_row_stride,
                          float eps, cudaStream_t stream);

MINFER_HIDDEN int fused_add_rmsnorm(void* input, void* residual, const void* weight, int64_t rows,
                                    int64_t hidden, int64_t input_row_stride,
                                    int64_t residual_row_stride, float eps, cudaStream_t stream);

MINFER_HIDDEN int silu_and_mul(void* out, const void* input, int64_t rows, int64_t d,
                               int64_t out_row_stride, int64_t input_row_stride,
                               cudaStream_t stream);
MINFER_HIDDEN int gelu_tanh_and_mul(void* out, const void* input, int64_t rows, int64_t d,
                                    int64_t out_row_stride, int64_t input_row_stride,
                                    cudaStream_t stream);

MINFER_HIDDEN int apply_rope(void* q, void* k, const int64_t* positions, int64_t tokens,
                             int64_t q_heads, int64_t k_heads, int64_t head_dim,
                             int64_t q_token_stride, int64_t q_head_stride, int64_t k_token_stride,
                             int64_t k_head_stride, double theta, cudaStream_t stream);

}  // namespace cuda

#endif  // MINFER_CUDA || __CUDACC__

}  // namespace minfer
