// Build-configuration checks shared by every minfer translation unit.
//
// Each (op, dtype, device) spec is its own shared library, and the build
// system picks the dtype with a -D flag on every unit of the spec. A unit that
// sees no dtype, or several, would silently build the wrong kernel, so refuse.
#pragma once

#if (defined(MINFER_DTYPE_FP16) + defined(MINFER_DTYPE_BF16) + defined(MINFER_DTYPE_FP32)) != 1
#error "minfer: compile with exactly one of -DMINFER_DTYPE_FP16, -DMINFER_DTYPE_BF16, -DMINFER_DTYPE_FP32"
#endif

// Every spec library defines the same names (entry points, helpers) with
// code that differs by dtype and device. If a library is loaded with
// RTLD_GLOBAL, default-visibility symbols of one spec could interpose on
// another's. So entry points are hidden, and headers put code that depends on
// the spec macros in unnamed namespaces (one translation unit per library
// includes each header, so nothing is duplicated). CUDA units use an inline
// namespace `detail` instead, kept private by -fvisibility=hidden: nvcc names
// an unnamed namespace after a hash of the source's absolute path, so two
// checkouts at different paths would build different binaries.
#if defined(_WIN32)
#define MINFER_HIDDEN
#else
#define MINFER_HIDDEN __attribute__((visibility("hidden")))
#endif
