// Helpers shared by the CPU kernel units (torch-free).
#pragma once

#include <cstdint>

#include "minfer/dtype.h"
#include "minfer/kernels.h"

namespace minfer::cpu_detail {
namespace {  // spec-dependent: private to this library (see config.h)

// Sum of value(i)^2 for i < n, in fp32. Eight independent partial sums let
// -O3 vectorize without -ffast-math and accumulate less rounding error than
// one running sum over a long row.
template <class Value>
inline float sum_squares(int64_t n, const Value& value) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) {
      const float v = value(i + j);
      acc[j] += v * v;
    }
  }
  float tail = 0.f;
  for (; i < n; ++i) {
    const float v = value(i);
    tail += v * v;
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

// out[r, i] = act(input[r, i]) * input[r, d + i], math in fp32.
template <class Act>
inline void act_and_mul(void* out_, const void* input_, int64_t rows, int64_t d,
                        int64_t out_row_stride, int64_t input_row_stride, const Act& act) {
  auto* out = static_cast<scalar_t*>(out_);
  const auto* input = static_cast<const scalar_t*>(input_);
  for (int64_t r = 0; r < rows; ++r) {
    const scalar_t* x = input + r * input_row_stride;
    const scalar_t* gate = x + d;
    scalar_t* y = out + r * out_row_stride;
    for (int64_t i = 0; i < d; ++i) y[i] = from_float(act(to_float(x[i])) * to_float(gate[i]));
  }
}

}  // namespace
}  // namespace minfer::cpu_detail
