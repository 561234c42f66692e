// Binding for rmsnorm: out = input * rsqrt(mean(input^2) + eps) * weight.
#include "minfer/binding.h"

namespace {

using torch::stable::Tensor;

void rmsnorm(const Tensor& out, const Tensor& input, const Tensor& weight, double eps) {
  using namespace minfer::binding;
  check_tensor(out, "out", 2);
  check_tensor(input, "input", 2);
  check_tensor(weight, "weight", 1);
  check_same_device(out, "out", input, "input");
  check_same_device(weight, "weight", input, "input");
  STD_TORCH_CHECK(same_shape(out, input), MINFER_OP_NAME ": out shape ", shape_str(out),
                  " must equal input shape ", shape_str(input));
  STD_TORCH_CHECK(weight.size(0) == input.size(1), MINFER_OP_NAME ": weight shape ",
                  shape_str(weight), " must be [hidden] for input shape ", shape_str(input));
  // Writing the result over the input itself is safe; partial overlap is not.
  if (out.const_data_ptr() != input.const_data_ptr()) check_no_overlap(out, "out", input, "input");
  check_no_overlap(out, "out", weight, "weight");
  if (input.numel() == 0) return;

  const int64_t rows = input.size(0), hidden = input.size(1);
#if defined(MINFER_CUDA)
  const DeviceGuard guard(input.get_device_index());
  check_launch(minfer::cuda::rmsnorm(out.mutable_data_ptr(), input.const_data_ptr(),
                                     weight.const_data_ptr(), rows, hidden, out.stride(0),
                                     input.stride(0), static_cast<float>(eps),
                                     current_stream(input)));
#else
  minfer::cpu::rmsnorm(out.mutable_data_ptr(), input.const_data_ptr(), weight.const_data_ptr(),
                       rows, hidden, out.stride(0), input.stride(0), static_cast<float>(eps));
#endif
}

}  // namespace

MINFER_REGISTER_OP("(Tensor(a!) out, Tensor input, Tensor weight, float eps) -> ()", rmsnorm)
