// Binding for gelu_tanh_and_mul: out = act(input[:, :d]) * input[:, d:], act = gelu with the tanh approximation.
#include "minfer/binding.h"

namespace {

using torch::stable::Tensor;

void gelu_tanh_and_mul(const Tensor& out, const Tensor& input) {
  using namespace minfer::binding;
  check_tensor(out, "out", 2);
  check_tensor(input, "input", 2);
  check_same_device(out, "out", input, "input");
  STD_TORCH_CHECK(input.size(1) % 2 == 0,
                  MINFER_OP_NAME ": input's last dim must be even, got shape ", shape_str(input));
  STD_TORCH_CHECK(out.size(0) == input.size(0) && out.size(1) == input.size(1) / 2,
                  MINFER_OP_NAME ": out shape ", shape_str(out),
                  " must be [rows, d] for input shape ", shape_str(input));
  check_no_overlap(out, "out", input, "input");
  if (out.numel() == 0) return;

  const int64_t rows = out.size(0), d = out.size(1);
#if defined(MINFER_CUDA)
  const DeviceGuard guard(input.get_device_index());
  check_launch(minfer::cuda::gelu_tanh_and_mul(out.mutable_data_ptr(), input.const_data_ptr(), rows, d,
                                 out.stride(0), input.stride(0), current_stream(input)));
#else
  minfer::cpu::gelu_tanh_and_mul(out.mutable_data_ptr(), input.const_data_ptr(), rows, d, out.stride(0),
                   input.stride(0));
#endif
}

}  // namespace

MINFER_REGISTER_OP("(Tensor(a!) out, Tensor input) -> ()", gelu_tanh_and_mul)
