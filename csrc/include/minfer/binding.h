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
#include <optional>
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

// The dtypes minfer's arguments have: the spec's and int64 positions.
constexpr int64_t element_size(ScalarType t) {
  return t == ScalarType::Long || t == ScalarType::Double ? 8
         : t == ScalarType::Float                         ? 4
                                                          : 2;
}

// What the checks and the launch need of one tensor argument, asked of
// libtorch once per call: every accessor of torch::stable::Tensor is a call
// into the C shim, so nothing below asks twice. `sizes` and `strides` are
// borrowed from the tensor, which outlives the call.
struct Arg {
  const Tensor* tensor;
  const char* name;
  void* data;
  torch::stable::Device device;
  int64_t dim;
  const int64_t* sizes;
  const int64_t* strides;
  int64_t numel;
  int64_t bytes;  // numel * element size: the span a contiguous tensor covers

  int64_t size(int64_t d) const { return sizes[d]; }
  int64_t stride(int64_t d) const { return strides[d]; }
  // A contiguous tensor of any dim >= 1 as the kernels take it, [rows, cols]:
  // the leading dims are rows, each `cols` elements after the last (so the
  // Python layer passes N-D tensors as they are, with no .view() per call).
  int64_t cols() const { return sizes[dim - 1]; }
  int64_t rows() const {
    int64_t r = 1;
    for (int64_t d = 0; d + 1 < dim; ++d) r *= sizes[d];
    return r;
  }
};

// check_tensor's `dim` for arguments read as rows (see Arg::rows).
inline constexpr int64_t kRows = -1;

// These are the checks of every call: the Python layer runs its own only
// after one of these refused (to word the error as one line for its API), so
// nothing is asked twice on the common path, and a direct call through
// torch.ops cannot hand the kernels memory they would misread. The stable
// check macro throws std::runtime_error (RuntimeError in Python) and puts
// "function, file:line, " before the message, which otherwise reads as before.
// `writes`: the kernel writes through this argument (its pointer then comes
// from mutable_data_ptr, which keeps torch's copy-on-write tensors correct).
// `dim`: the exact number of dims, or kRows for any number from 1 on.
inline Arg check_tensor(const Tensor& t, const char* name, int64_t dim, bool writes,
                        ScalarType dtype = kDtype) {
  STD_TORCH_CHECK(t.defined(), MINFER_OP_NAME ": ", name, " is undefined");
  Arg a{&t, name, nullptr, t.device(), 0, nullptr, nullptr, 1, 0};
  STD_TORCH_CHECK(a.device.type() == kDevice, MINFER_OP_NAME ": ", name, " must be on ",
                  device_str(kDevice), ", got ", device_str(t));
  const ScalarType got = t.scalar_type();
  STD_TORCH_CHECK(got == dtype, MINFER_OP_NAME ": ", name, " must be ", dtype, ", got ", got);
  const AtenTensorHandle h = t.get();
  TORCH_ERROR_CODE_CHECK(aoti_torch_get_dim(h, &a.dim));
  if (dim == kRows) {
    STD_TORCH_CHECK(a.dim >= 1, MINFER_OP_NAME ": ", name,
                    " must have at least 1 dim (the last is the row), got a scalar");
  } else {
    STD_TORCH_CHECK(a.dim == dim, MINFER_OP_NAME ": ", name, " must be ", dim, "-D, got shape ",
                    shape_str(t));
  }
  int64_t* sizes = nullptr;
  int64_t* strides = nullptr;
  TORCH_ERROR_CODE_CHECK(aoti_torch_get_sizes(h, &sizes));
  TORCH_ERROR_CODE_CHECK(aoti_torch_get_strides(h, &strides));
  a.sizes = sizes;
  a.strides = strides;
  // torch's own rule for the default memory format: size-1 dims may have
  // any stride, and an empty tensor is contiguous.
  bool contiguous = true;
  int64_t expected = 1;
  for (int64_t d = a.dim - 1; d >= 0; --d) {
    a.numel *= sizes[d];
    if (sizes[d] != 1) {
      contiguous = contiguous && strides[d] == expected;
      expected *= sizes[d];
    }
  }
  STD_TORCH_CHECK(a.numel == 0 || contiguous, MINFER_OP_NAME ": ", name, " must be contiguous");
  a.bytes = a.numel * element_size(dtype);
  a.data = writes ? t.mutable_data_ptr() : const_cast<void*>(t.const_data_ptr());
  return a;
}

inline void check_same_device(const Arg& a, const Arg& b) {
  STD_TORCH_CHECK(a.device == b.device, MINFER_OP_NAME ": ", a.name, " and ", b.name,
                  " must be on the same device, got ", device_str(*a.tensor), " and ",
                  device_str(*b.tensor));
}

// Not `a.sizes() == b.sizes()`: torch 2.11's headers give HeaderOnlyArrayRef
// no operator== (TORCH_TARGET_VERSION guards shim calls, not header-only code).
inline bool same_shape(const Arg& a, const Arg& b) {
  if (a.dim != b.dim) return false;
  for (int64_t d = 0; d < a.dim; ++d)
    if (a.sizes[d] != b.sizes[d]) return false;
  return true;
}

// The same dims but the last: the same rows (see Arg::rows).
inline bool same_rows(const Arg& a, const Arg& b) {
  if (a.dim != b.dim) return false;
  for (int64_t d = 0; d + 1 < a.dim; ++d)
    if (a.sizes[d] != b.sizes[d]) return false;
  return true;
}

// Kernels read and write in parallel (CUDA) or in one pass (CPU), so an
// output overlapping another argument would corrupt results. Both tensors are
// contiguous by now, so `bytes` from the data pointer is the span each covers.
inline void check_no_overlap(const Arg& a, const Arg& b) {
  if (a.numel == 0 || b.numel == 0) return;
  const auto pa = reinterpret_cast<uintptr_t>(a.data);
  const auto pb = reinterpret_cast<uintptr_t>(b.data);
  const bool overlap = pa < pb + uintptr_t(b.bytes) && pb < pa + uintptr_t(a.bytes);
  STD_TORCH_CHECK(!overlap, MINFER_OP_NAME ": ", a.name, " and ", b.name, " must not overlap");
}

#if defined(MINFER_CUDA)
// The launch context of a call on `a`'s device: the device made current for
// the launch only where it is not already (torch's DeviceGuard allocates, and
// a caller on the tensors' device, the usual case, needs none), and the
// stream torch would use there (a side stream set by the caller included), so
// the launch is ordered with the caller's other work.
class OnDevice {
 public:
  explicit OnDevice(const Arg& a) {
    const int32_t index = a.device.index();
    int current = -1;
    if (cudaGetDevice(&current) != cudaSuccess) {
      (void)cudaGetLastError();  // not this launch's error
      current = -1;
    }
    if (current != index) guard_.emplace(index);
    void* stream = nullptr;
    // Not STABLE_TORCH_ERROR_CODE_CHECK: torch 2.11's headers lack it.
    TORCH_ERROR_CODE_CHECK(aoti_torch_get_current_cuda_stream(index, &stream));
    stream_ = static_cast<cudaStream_t>(stream);
  }
  cudaStream_t stream() const { return stream_; }

 private:
  std::optional<torch::stable::accelerator::DeviceGuard> guard_;
  cudaStream_t stream_ = nullptr;
};

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
