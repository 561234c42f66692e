// Glue shared by the binding units: input checks, device/stream handling and
// op registration. The only torch-dependent header; bindings/*.cpp alone
// include it. Kept to light torch headers (no torch/extension.h, no Python).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/library.h>
#if defined(MINFER_CUDA)
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <cstdint>

#include "minfer/config.h"
#include "minfer/kernels.h"

#if !defined(MINFER_SPEC_NAME)
#error "minfer: compile binding units with -DMINFER_SPEC_NAME=<op>_<dtype>_<device>"
#endif

#define MINFER_STRINGIFY_IMPL(x) #x
#define MINFER_STRINGIFY(x) MINFER_STRINGIFY_IMPL(x)
// The registered op name, e.g. "rmsnorm_bf16_cuda".
#define MINFER_OP_NAME MINFER_STRINGIFY(MINFER_SPEC_NAME)

namespace minfer::binding {
namespace {  // spec-dependent: private to this library (see config.h)

#if defined(MINFER_DTYPE_FP16)
inline constexpr at::ScalarType kDtype = at::kHalf;
#elif defined(MINFER_DTYPE_BF16)
inline constexpr at::ScalarType kDtype = at::kBFloat16;
#else
inline constexpr at::ScalarType kDtype = at::kFloat;
#endif

#if defined(MINFER_CUDA)
inline constexpr c10::DeviceType kDevice = c10::DeviceType::CUDA;
#else
inline constexpr c10::DeviceType kDevice = c10::DeviceType::CPU;
#endif

// The Python layer validates first; these checks keep a direct call through
// torch.ops from handing the kernels memory they would misread.
inline void check_tensor(const at::Tensor& t, const char* name, int64_t dim,
                         at::ScalarType dtype = kDtype) {
  TORCH_CHECK(t.defined(), MINFER_OP_NAME ": ", name, " is undefined");
  TORCH_CHECK(t.device().type() == kDevice, MINFER_OP_NAME ": ", name, " must be on ", kDevice,
              ", got ", t.device());
  TORCH_CHECK(t.scalar_type() == dtype, MINFER_OP_NAME ": ", name, " must be ", dtype, ", got ",
              t.scalar_type());
  TORCH_CHECK(t.dim() == dim, MINFER_OP_NAME ": ", name, " must be ", dim, "-D, got shape ",
              t.sizes());
  TORCH_CHECK(t.is_contiguous(), MINFER_OP_NAME ": ", name, " must be contiguous");
}

inline void check_same_device(const at::Tensor& a, const char* a_name, const at::Tensor& b,
                              const char* b_name) {
  TORCH_CHECK(a.device() == b.device(), MINFER_OP_NAME ": ", a_name, " and ", b_name,
              " must be on the same device, got ", a.device(), " and ", b.device());
}

// Kernels read and write in parallel (CUDA) or in one pass (CPU), so an
// output overlapping another argument would corrupt results.
inline void check_no_overlap(const at::Tensor& a, const char* a_name, const at::Tensor& b,
                             const char* b_name) {
  if (a.numel() == 0 || b.numel() == 0) return;
  const auto pa = reinterpret_cast<uintptr_t>(a.const_data_ptr());
  const auto pb = reinterpret_cast<uintptr_t>(b.const_data_ptr());
  const bool overlap = pa < pb + b.nbytes() && pb < pa + a.nbytes();
  TORCH_CHECK(!overlap, MINFER_OP_NAME ": ", a_name, " and ", b_name, " must not overlap");
}

#if defined(MINFER_CUDA)
// Must outlive the launch: kernels go to the inputs' device, not the caller's.
using DeviceGuard = c10::cuda::CUDAGuard;

inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

inline void check_launch(int err) {
  TORCH_CHECK(err == 0, MINFER_OP_NAME ": CUDA kernel launch failed: ",
              cudaGetErrorString(static_cast<cudaError_t>(err)));
}
#endif

}  // namespace
}  // namespace minfer::binding

#if defined(MINFER_CUDA)
#define MINFER_DISPATCH_KEY CUDA
#else
#define MINFER_DISPATCH_KEY CPU
#endif

// Defines minfer::<spec name> with the schema `args` ("(...) -> ()") and
// registers `fn` for this spec's device. A fragment, because every spec
// library adds its op to the same `minfer` namespace.
#define MINFER_REGISTER_OP(args, fn)                                                   \
  TORCH_LIBRARY_FRAGMENT(minfer, m) { m.def(MINFER_OP_NAME args); }                    \
  TORCH_LIBRARY_IMPL(minfer, MINFER_DISPATCH_KEY, m) { m.impl(MINFER_OP_NAME, TORCH_FN(fn)); }
