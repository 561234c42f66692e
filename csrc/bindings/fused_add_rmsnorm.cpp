// Binding for fused_add_rmsnorm: residual += input; input = rmsnorm(sum) * weight.
#include "minfer/binding.h"

namespace {

using torch::stable::Tensor;

void fused_add_rmsnorm(const Tensor& input, const Tensor& residual, const Tensor& weight,
                       double eps) {
  using namespace minfer::binding;
  const Arg x = check_tensor(input, "input", kRows, /*writes=*/true);
  const Arg r = check_tensor(residual, "residual", kRows, true);
  const Arg w = check_tensor(weight, "weight", 1, false);
  check_same_device(r, x);
  check_same_device(w, x);
  STD_TORCH_CHECK(same_shape(r, x), MINFER_OP_NAME ": residual shape ", shape_str(residual),
                  " must equal input shape ", shape_str(input));
  STD_TORCH_CHECK(w.size(0) == x.cols(), MINFER_OP_NAME ": weight shape ", shape_str(weight),
                  " must be [hidden] for input shape ", shape_str(input));
  check_no_overlap(x, r);
  check_no_overlap(x, w);
  check_no_overlap(r, w);
  if (x.numel == 0) return;

  // Both contiguous: each row starts `hidden` elements after the last.
  const int64_t rows = x.rows(), hidden = x.cols();
#if defined(MINFER_CUDA)
  const OnDevice on(x);
  check_launch(minfer::cuda::fused_add_rmsnorm(x.data, r.data, w.data, rows, hidden, hidden,
                                               hidden, static_cast<float>(eps), on.stream()));
#else
  minfer::cpu::fused_add_rmsnorm(x.data, r.data, w.data, rows, hidden, hidden, hidden,
                                 static_cast<float>(eps));
#endif
}

}  // namespace

MINFER_REGISTER_OP("(Tensor(a!) input, Tensor(b!) residual, Tensor weight, float eps) -> ()",
                   fused_add_rmsnorm)
