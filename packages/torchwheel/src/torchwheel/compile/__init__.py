"""Compile: the build target (torch, toolchain, archs), flags, cache keys, ninja files and the ninja
run. Shared by JIT builds (through `torchwheel.compile.jit`) and ahead-of-time builds (release)."""
