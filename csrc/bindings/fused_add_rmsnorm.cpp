// Binding for fused_add_rmsnorm: residual += input; input = rmsnorm(sum) * weight.
#include "minfer/binding.h"

namespace {

void fused_add_rmsnorm(const at::Tensor& input, const at::Tensor& residual,
                       const at::Tensor& weight, double eps) {
  using namespace minfer::binding;
  check_tensor(input, "input", 2);
  check_tensor(residual, "residual", 2);
  check_tensor(weight, "weight", 1);
  check_same_device(residual, "residual", input, "input");
  check_same_device(weight, "weight", input, "input");
  TORCH_CHECK(residual.sizes() == input.sizes(), MINFER_OP_NAME ": residual shape ",
              residual.sizes(), " must equal input shape ", input.sizes());
  TORCH_CHECK(weight.size(0) == input.size(1), MINFER_OP_NAME ": weight shape ", weight.sizes(),
              " must be [hidden] for input shape ", input.sizes());
  check_no_overlap(input, "input", residual, "residual");
  check_no_overlap(input, "input", weight, "weight");
  check_no_overlap(residual, "residual", weight, "weight");
  if (input.numel() == 0) return;

  const int64_t rows = input.size(0), hidden = input.size(1);
#if defined(MINFER_CUDA)
  const DeviceGuard guard(input.device());
  check_launch(minfer::cuda::fused_add_rmsnorm(
      input.mutable_data_ptr(), residual.mutable_data_ptr(), weight.const_data_ptr(), rows, hidden,
      input.stride(0), residual.stride(0), static_cast<float>(eps), current_stream()));
#else
  minfer::cpu::fused_add_rmsnorm(input.mutable_data_ptr(), residual.mutable_data_ptr(),
                                 weight.const_data_ptr(), rows, hidden, input.stride(0),
                                 residual.stride(0), static_cast<float>(eps));
#endif
}

}  // namespace

MINFER_REGISTER_OP("(Tensor(a!) input, Tensor(b!) residual, Tensor weight, float eps) -> ()",
                   fused_add_rmsnorm)
