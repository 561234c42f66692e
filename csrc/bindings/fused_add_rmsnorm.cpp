// Binding for fused_add_rmsnorm: residual += input; input = rmsnorm(sum) * weight.
#include "minfer/binding.h"

namespace {

using torch::stable::Tensor;

void fused_add_rmsnorm(const Tensor& input, const Tensor& residual, const Tensor& weight,
                       double eps) {
  using namespace minfer::binding;
  check_tensor(input, "input", 2);
  check_tensor(residual, "residual", 2);
  check_tensor(weight, "weight", 1);
  check_same_device(residual, "residual", input, "input");
  check_same_device(weight, "weight", input, "input");
  STD_TORCH_CHECK(same_shape(residual, input), MINFER_OP_NAME ": residual shape ",
                  shape_str(residual), " must equal input shape ", shape_str(input));
  STD_TORCH_CHECK(weight.size(0) == input.size(1), MINFER_OP_NAME ": weight shape ",
                  shape_str(weight), " must be [hidden] for input shape ", shape_str(input));
  check_no_overlap(input, "input", residual, "residual");
  check_no_overlap(input, "input", weight, "weight");
  check_no_overlap(residual, "residual", weight, "weight");
  if (input.numel() == 0) return;

  const int64_t rows = input.size(0), hidden = input.size(1);
#if defined(MINFER_CUDA)
  const DeviceGuard guard(input.get_device_index());
  check_launch(minfer::cuda::fused_add_rmsnorm(
      input.mutable_data_ptr(), residual.mutable_data_ptr(), weight.const_data_ptr(), rows, hidden,
      input.stride(0), residual.stride(0), static_cast<float>(eps), current_stream(input)));
#else
  minfer::cpu::fused_add_rmsnorm(input.mutable_data_ptr(), residual.mutable_data_ptr(),
                                 weight.const_data_ptr(), rows, hidden, input.stride(0),
                                 residual.stride(0), static_cast<float>(eps));
#endif
}

}  // namespace

MINFER_REGISTER_OP("(Tensor(a!) input, Tensor(b!) residual, Tensor weight, float eps) -> ()",
                   fused_add_rmsnorm)
