// Binding for rmsnorm: out = input * rsqrt(mean(input^2) + eps) * weight.
#include "minfer/binding.h"

namespace {

using torch::stable::Tensor;

void rmsnorm(const Tensor& out, const Tensor& input, const Tensor& weight, double eps) {
  using namespace minfer::binding;
  const Arg o = check_tensor(out, "out", kRows, /*writes=*/true);
  const Arg x = check_tensor(input, "input", kRows, false);
  const Arg w = check_tensor(weight, "weight", 1, false);
  check_same_device(o, x);
  check_same_device(w, x);
  STD_TORCH_CHECK(same_shape(o, x), MINFER_OP_NAME ": out shape ", shape_str(out),
                  " must equal input shape ", shape_str(input));
  STD_TORCH_CHECK(w.size(0) == x.cols(), MINFER_OP_NAME ": weight shape ", shape_str(weight),
                  " must be [hidden] for input shape ", shape_str(input));
  // Writing the result over the input itself is safe; partial overlap is not.
  if (o.data != x.data) check_no_overlap(o, x);
  check_no_overlap(o, w);
  if (x.numel == 0) return;

  // Both contiguous: each row starts `hidden` elements after the last.
  const int64_t rows = x.rows(), hidden = x.cols();
#if defined(MINFER_CUDA)
  const OnDevice on(x);
  check_launch(minfer::cuda::rmsnorm(o.data, x.data, w.data, rows, hidden, hidden, hidden,
                                     static_cast<float>(eps), on.stream()));
#else
  minfer::cpu::rmsnorm(o.data, x.data, w.data, rows, hidden, hidden, hidden,
                       static_cast<float>(eps));
#endif
}

}  // namespace

MINFER_REGISTER_OP("(Tensor(a!) out, Tensor input, Tensor weight, float eps) -> ()", rmsnorm)
