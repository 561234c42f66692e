// Binding for rmsnorm: out = input * rsqrt(mean(input^2) + eps) * weight.
#include "minfer/binding.h"

namespace {

void rmsnorm(const at::Tensor& out, const at::Tensor& input, const at::Tensor& weight,
             double eps) {
  using namespace minfer::binding;
  check_tensor(out, "out", 2);
  check_tensor(input, "input", 2);
  check_tensor(weight, "weight", 1);
  check_same_device(out, "out", input, "input");
  check_same_device(weight, "weight", input, "input");
  TORCH_CHECK(out.sizes() == input.sizes(), MINFER_OP_NAME ": out shape ", out.sizes(),
              " must equal input shape ", input.sizes());
  TORCH_CHECK(weight.size(0) == input.size(1), MINFER_OP_NAME ": weight shape ", weight.sizes(),
              " must be [hidden] for input shape ", input.sizes());
  // Writing the result over the input itself is safe; partial overlap is not.
  if (out.const_data_ptr() != input.const_data_ptr()) check_no_overlap(out, "out", input, "input");
  check_no_overlap(out, "out", weight, "weight");
  if (input.numel() == 0) return;

  const int64_t rows = input.size(0), hidden = input.size(1);
#if defined(MINFER_CUDA)
  const DeviceGuard guard(input.device());
  check_launch(minfer::cuda::rmsnorm(out.mutable_data_ptr(), input.const_data_ptr(),
                                     weight.const_data_ptr(), rows, hidden, out.stride(0),
                                     input.stride(0), static_cast<float>(eps), current_stream()));
#else
  minfer::cpu::rmsnorm(out.mutable_data_ptr(), input.const_data_ptr(), weight.const_data_ptr(),
                       rows, hidden, out.stride(0), input.stride(0), static_cast<float>(eps));
#endif
}

}  // namespace

MINFER_REGISTER_OP("(Tensor(a!) out, Tensor input, Tensor weight, float eps) -> ()", rmsnorm)
