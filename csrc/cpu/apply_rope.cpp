// CPU NeoX-style rotary embedding, in place on q and k.
#include <cmath>
#include <vector>

#include "minfer/cpu_utils.h"
#include "minfer/rope.h"

namespace minfer::cpu {

void apply_rope(void* q_, void* k_, const int64_t* positions, int64_t tokens, int64_t q_heads,
                int64_t k_heads, int64_t head_dim, int64_t q_token_stride, int64_t q_head_stride,
                int64_t k_token_stride, int64_t k_head_stride, double theta) {
  if (tokens <= 0 || head_dim <= 0) return;
  auto* q = static_cast<scalar_t*>(q_);
  auto* k = static_cast<scalar_t*>(k_);
  const int64_t half = head_dim / 2;

  std::vector<float> inv_freq(half), cos_t(half), sin_t(half);
  for (int64_t i = 0; i < half; ++i) inv_freq[i] = rope_inv_freq(theta, i, head_dim);

  const auto rotate = [&](scalar_t* x) {
    for (int64_t i = 0; i < half; ++i) {
      const float x1 = to_float(x[i]);
      const float x2 = to_float(x[i + half]);
      x[i] = from_float(x1 * cos_t[i] - x2 * sin_t[i]);
      x[i + half] = from_float(x2 * cos_t[i] + x1 * sin_t[i]);
    }
  };

  for (int64_t t = 0; t < tokens; ++t) {
    // The angle is an fp32 product of the fp32-rounded position, like
    // `positions.float() * inv_freq`; every head of the token shares it.
    const float pos = float(positions[t]);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = pos * inv_freq[i];
      cos_t[i] = std::cos(angle);
      sin_t[i] = std::sin(angle);
    }
    for (int64_t h = 0; h < q_heads; ++h) rotate(q + t * q_token_stride + h * q_head_stride);
    for (int64_t h = 0; h < k_heads; ++h) rotate(k + t * k_token_stride + h * k_head_stride);
  }
}

}  // namespace minfer::cpu
