// A torch-using unit whose interface has a std::string: TORCH_CHECK passes its message to
// c10::detail::torchCheckFail(..., const std::string&), so the mangled name shows the C++11 ABI.
#include <c10/util/Exception.h>

#include <string>

extern "C" float checked_scale(float x, float factor) {
  TORCH_CHECK(factor > 0, "factor must be positive, got ", factor);
  return x * factor;
}

std::string checked_scale_name() { return "checked_scale"; }
