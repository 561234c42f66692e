// Calls linalg_matrix_sqrth, an op that torch 2.14 added: built against 2.14, it needs
// at::_ops::linalg_matrix_sqrth::call, which torch 2.13's libraries do not define.
#include <ATen/ops/linalg_matrix_sqrth.h>

at::Tensor matrix_sqrth(const at::Tensor& x) { return at::linalg_matrix_sqrth(x); }
