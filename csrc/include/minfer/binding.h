// Glue shared by the binding units: input checks, device/stream handling and
// op registration. The only torch-dependent header; bindings/*.cpp alone
// include it.
//
// Only torch's stable ABI: torch/csrc/stable, torch/headeronly and the AOTI C
// shim. Every call into libtorch goes through a C function of the shim, so a
// spec library built against one torch loads into any later one. Everything
// used here must exist in torch 2.11, minfer's minimum: building with
// TORCH_TARGET_VERSION=0x020b000000000000 hides newer shim calls, but not
// newer header-only code, so compile against 2.11's own headers to be sure.
#pragma once

#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/DeviceType.h>
#include <torch/headeronly/core/ScalarType.h>
#include <torch/headeronly/util/Exception.h>
#include <torch/headeronly/util/shim_utils.h>
#if defined(MINFER_CUDA)
#include <cuda_runtime_api.h>  // cudaGetErrorString, for launch errors
#include <torch/csrc/stable/accelerator.h>
#endif

#include <cstdint>
#include <sstream>
#include <string>

#include "minfer/config.h"
#include "minfer/kernels.h"

#if !defined(MINFER_SPEC_NAME)
#error "minfer: compile binding units with -DMINFER_SPEC_NAME=<op>_<dtype>_<device>"
#endif

#if defined(MINFER_CUDA)
// torch::stable offers no cudaStream_t up to 2.14 (Stream::nativeHandle needs
// 2.13), so the stream comes from AOTInductor's C shim function, exported by
// libtorch_cuda of every torch minfer supports. shim.h declares it only under
// USE_CUDA, which the build does not set.
extern "C" AOTI_TORCH_EXPORT AOTITorchError aoti_torch_get_current_cuda_stream(int32_t device_index,
                                                                              void** ret_stream);
#endif

#define MINFER_STRINGIFY_IMPL(x) #x
#define MINFER_STRINGIFY(x) MINFER_STRINGIFY_IMPL(x)
// The registered op name, e.g. "rmsnorm_bf16_cuda".
#define MINFER_OP_NAME MINFER_STRINGIFY(MINFER_SPEC_NAME)

namespace minfer::binding {
namespace {  // spec-dependent: private to this library (see config.h)

using torch::headeronly::DeviceType;
using torch::headeronly::ScalarType;
using torch::stable::Tensor;

#if defined(MINFER_DTYPE_FP16)
inline constexpr ScalarType kDtype = ScalarType::Half;
#elif defined(MINFER_DTYPE_BF16)
inline constexpr ScalarType kDtype = ScalarType::BFloat16;
#else
inline constexpr ScalarType kDtype = ScalarType::Float;
#endif

#if defined(MINFER_CUDA)
inline constexpr DeviceType kDevice = DeviceType::CUDA;
#else
inline constexpr DeviceType kDevice = DeviceType::CPU;
#endif

// The stable headers print ScalarType but not devices or shapes; these keep
// c10's spelling ("cuda:0", "[2, 8]") so messages read as they did with ATen.
inline std::string device_str(DeviceType type, int32_t index = -1) {
  std::ostringstream out;
  switch (type) {
    case DeviceType::CPU: out << "cpu"; break;
    case DeviceType::CUDA: out << "cuda"; break;
    case DeviceType::Meta: out << "meta"; break;
    default: out << "device type " << static_cast<int>(type); break;
  }
  if (index >= 0) out << ':' << index;
  return out.str();
}

inline std::string device_str(const Tensor& t) {
  const torch::stable::Device device = t.device();
  return device_str(device.type(), device.index());
}

inline std::string shape_str(const Tensor& t) {
  std::ostringstream out;
  out << '[';
  const char* sep = "";
  for (const int64_t size : t.sizes()) {
    out << sep << size;
    sep = ", ";
  }
  out << ']';
  return out.str();
}

// Not `a.sizes() == b.sizes()`: torch 2.11's headers give HeaderOnlyArrayRef
// no operator== (TORCH_TARGET_VERSION guards shim calls, not header-only code).
inline bool same_shape(const Tensor& a, const Tensor& b) { return a.sizes().equals(b.sizes()); }

// The Python layer validates first; these checks keep a direct call through
// torch.ops from handing the kernels memory they would misread. The stable
// check macro throws std::runtime_error (RuntimeError in Python) and puts
// "function, file:line, " before the message, which otherwise reads as before.
inline void check_tensor(const Tensor& t, const char* name, int64_t dim,
                         ScalarType dtype = kDtype) {
  STD_TORCH_CHECK(t.defined(), MINFER_OP_NAME ": ", name, " is undefined");
  STD_TORCH_CHECK(t.device().type() == kDevice, MINFER_OP_NAME ": ", name, " must be on ",
                  device_str(kDevice), ", got ", device_str(t));
  STD_TORCH_CHECK(t.scalar_type() == dtype, MINFER_OP_NAME ": ", name, " must be ", dtype,
                  ", got ", t.scalar_type());
  STD_TORCH_CHECK(t.dim() == dim, MINFER_OP_NAME ": ", name, " must be ", dim,
                  "-D, got shape ", shape_str(t));
  STD_TORCH_CHECK(t.is_contiguous(), MINFER_OP_NAME ": ", name, " must be contiguous");
}

inline void check_same_device(const Tensor& a, const char* a_name, const Tensor& b,
                              const char* b_name) {
  STD_TORCH_CHECK(a.device() == b.device(), MINFER_OP_NAME ": ", a_name, " and ", b_name,
                  " must be on the same device, got ", device_str(a), " and ", device_str(b));
}

// Kernels read and write in parallel (CUDA) or in one pass (CPU), so an
// output overlapping another argument would corrupt results. Both tensors are
// contiguous by now, so numel * element_size is the span each one covers.
inline void check_no_overlap(const Tensor& a, const char* a_name, const Tensor& b,
                             const char* b_name) {
  if (a.numel() == 0 || b.numel() == 0) return;
  const auto pa = reinterpret_cast<uintptr_t>(a.const_data_ptr());
  const auto pb = reinterpret_cast<uintptr_t>(b.const_data_ptr());
  const uintptr_t a_bytes = static_cast<uintptr_t>(a.numel()) * a.element_size();
  const uintptr_t b_bytes = static_cast<uintptr_t>(b.numel()) * b.element_size();
  const bool overlap = pa < pb + b_bytes && pb < pa + a_bytes;
  STD_TORCH_CHECK(!overlap, MINFER_OP_NAME ": ", a_name, " and ", b_name, " must not overlap");
}

#if defined(MINFER_CUDA)
// Must outlive the launch: kernels go to the inputs' device, not the caller's.
using DeviceGuard = torch::stable::accelerator::DeviceGuard;

// The stream torch would use on `t`'s device (a side stream set by the caller
// included), so the launch is ordered with the caller's other work.
inline cudaStream_t current_stream(const Tensor& t) {
  void* stream = nullptr;
  // Not STABLE_TORCH_ERROR_CODE_CHECK: torch 2.11's headers lack it.
  TORCH_ERROR_CODE_CHECK(aoti_torch_get_current_cuda_stream(t.get_device_index(), &stream));
  return static_cast<cudaStream_t>(stream);
}

inline void check_launch(int err) {
  STD_TORCH_CHECK(err == 0, MINFER_OP_NAME ": CUDA kernel launch failed: ",
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
// library adds its op to the same `minfer` namespace. TORCH_BOX turns `fn`
// into the boxed C calling convention the stable ABI registers.
#define MINFER_REGISTER_OP(args, fn)                                                  \
  STABLE_TORCH_LIBRARY_FRAGMENT(minfer, m) { m.def(MINFER_OP_NAME args); }            \
  STABLE_TORCH_LIBRARY_IMPL(minfer, MINFER_DISPATCH_KEY, m) {                         \
    m.impl(MINFER_OP_NAME, TORCH_BOX(&fn));                                           \
  }
