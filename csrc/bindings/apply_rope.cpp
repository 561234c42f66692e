// Binding for apply_rope: NeoX-style rotary embedding, in place on q and k.
#include "minfer/binding.h"

namespace {

using torch::stable::Tensor;

void apply_rope(const Tensor& q, const Tensor& k, const Tensor& positions, double theta) {
  using namespace minfer::binding;
  const Arg qa = check_tensor(q, "q", 3, /*writes=*/true);
  const Arg ka = check_tensor(k, "k", 3, true);
  const Arg pa = check_tensor(positions, "positions", 1, false, ScalarType::Long);
  check_same_device(ka, qa);
  check_same_device(pa, qa);
  const int64_t tokens = qa.size(0), head_dim = qa.size(2);
  STD_TORCH_CHECK(ka.size(0) == tokens && pa.size(0) == tokens,
                  MINFER_OP_NAME ": q, k and positions must have the same number of tokens, got ",
                  shape_str(q), ", ", shape_str(k), " and ", shape_str(positions));
  STD_TORCH_CHECK(ka.size(2) == head_dim,
                  MINFER_OP_NAME ": q and k must have the same head_dim, got ", shape_str(q),
                  " and ", shape_str(k));
  STD_TORCH_CHECK(head_dim % 2 == 0, MINFER_OP_NAME ": head_dim must be even, got ", head_dim);
  check_no_overlap(qa, ka);
  check_no_overlap(qa, pa);
  check_no_overlap(ka, pa);
  if (qa.numel == 0 && ka.numel == 0) return;

  const int64_t q_heads = qa.size(1), k_heads = ka.size(1);
  const auto* pos = static_cast<const int64_t*>(pa.data);
#if defined(MINFER_CUDA)
  const OnDevice on(qa);
  check_launch(minfer::cuda::apply_rope(qa.data, ka.data, pos, tokens, q_heads, k_heads, head_dim,
                                        qa.stride(0), qa.stride(1), ka.stride(0), ka.stride(1),
                                        theta, on.stream()));
#else
  minfer::cpu::apply_rope(qa.data, ka.data, pos, tokens, q_heads, k_heads, head_dim, qa.stride(0),
                          qa.stride(1), ka.stride(0), ka.stride(1), theta);
#endif
}

}  // namespace

MINFER_REGISTER_OP("(Tensor(a!) q, Tensor(b!) k, Tensor positions, float theta) -> ()",
                   apply_rope)
