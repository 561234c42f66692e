// Binding for apply_rope: NeoX-style rotary embedding, in place on q and k.
#include "minfer/binding.h"

namespace {

using torch::stable::Tensor;

void apply_rope(const Tensor& q, const Tensor& k, const Tensor& positions, double theta) {
  using namespace minfer::binding;
  check_tensor(q, "q", 3);
  check_tensor(k, "k", 3);
  check_tensor(positions, "positions", 1, ScalarType::Long);
  check_same_device(k, "k", q, "q");
  check_same_device(positions, "positions", q, "q");
  const int64_t tokens = q.size(0), head_dim = q.size(2);
  STD_TORCH_CHECK(k.size(0) == tokens && positions.size(0) == tokens,
                  MINFER_OP_NAME ": q, k and positions must have the same number of tokens, got ",
                  shape_str(q), ", ", shape_str(k), " and ", shape_str(positions));
  STD_TORCH_CHECK(k.size(2) == head_dim,
                  MINFER_OP_NAME ": q and k must have the same head_dim, got ", shape_str(q),
                  " and ", shape_str(k));
  STD_TORCH_CHECK(head_dim % 2 == 0, MINFER_OP_NAME ": head_dim must be even, got ", head_dim);
  check_no_overlap(q, "q", k, "k");
  check_no_overlap(q, "q", positions, "positions");
  check_no_overlap(k, "k", positions, "positions");
  if (q.numel() == 0 && k.numel() == 0) return;

  const int64_t q_heads = q.size(1), k_heads = k.size(1);
  const auto* pos = positions.const_data_ptr<int64_t>();
#if defined(MINFER_CUDA)
  const DeviceGuard guard(q.get_device_index());
  check_launch(minfer::cuda::apply_rope(q.mutable_data_ptr(), k.mutable_data_ptr(), pos, tokens,
                                        q_heads, k_heads, head_dim, q.stride(0), q.stride(1),
                                        k.stride(0), k.stride(1), theta, current_stream(q)));
#else
  minfer::cpu::apply_rope(q.mutable_data_ptr(), k.mutable_data_ptr(), pos, tokens, q_heads,
                          k_heads, head_dim, q.stride(0), q.stride(1), k.stride(0), k.stride(1),
                          theta);
#endif
}

}  // namespace

MINFER_REGISTER_OP("(Tensor(a!) q, Tensor(b!) k, Tensor positions, float theta) -> ()",
                   apply_rope)
