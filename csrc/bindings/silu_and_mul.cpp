// Binding for silu_and_mul: out = act(input[:, :d]) * input[:, d:], act = silu(x) = x / (1 + exp(-x)).
#include "minfer/binding.h"

namespace {

using torch::stable::Tensor;

void silu_and_mul(const Tensor& out, const Tensor& input) {
  using namespace minfer::binding;
  const Arg o = check_tensor(out, "out", kRows, /*writes=*/true);
  const Arg x = check_tensor(input, "input", kRows, false);
  check_same_device(o, x);
  STD_TORCH_CHECK(x.cols() % 2 == 0,
                  MINFER_OP_NAME ": input's last dim must be even, got shape ", shape_str(input));
  STD_TORCH_CHECK(same_rows(o, x) && o.cols() == x.cols() / 2, MINFER_OP_NAME ": out shape ",
                  shape_str(out), " must be [..., d] for input shape ", shape_str(input));
  check_no_overlap(o, x);
  if (o.numel == 0) return;

  // Both contiguous: rows of 2d elements in, d out.
  const int64_t rows = o.rows(), d = o.cols();
#if defined(MINFER_CUDA)
  const OnDevice on(x);
  check_launch(minfer::cuda::silu_and_mul(o.data, x.data, rows, d, d, 2 * d, on.stream()));
#else
  minfer::cpu::silu_and_mul(o.data, x.data, rows, d, d, 2 * d);
#endif
}

}  // namespace

MINFER_REGISTER_OP("(Tensor(a!) out, Tensor input) -> ()", silu_and_mul)
