// The rotary frequency formula, shared by the CPU and CUDA kernels so both
// rotate by bit-identical angles (torch-free).
#pragma once

#include <cstdint>
#if !defined(__CUDACC__)
#include <cmath>
#endif

#if defined(__CUDACC__)
#define MINFER_HOST_DEVICE __host__ __device__
#else
#define MINFER_HOST_DEVICE
#endif

namespace minfer {

// theta^(-2i/head_dim) with the exponent rounded to fp32, as the fp32
// reference computes it. The power itself is taken in double and rounded
// once: fp32 pow is not correctly rounded (up to 4 ulp on CUDA), and one ulp
// of inv_freq times a position in the thousands is already a visible angle
// error, so this keeps CPU and CUDA equal to each other and to a float64
// reference.
MINFER_HOST_DEVICE inline float rope_inv_freq(double theta, int64_t i, int64_t head_dim) {
  const float exponent = -float(2 * i) / float(head_dim);
  return float(pow(theta, double(exponent)));
}

}  // namespace minfer
