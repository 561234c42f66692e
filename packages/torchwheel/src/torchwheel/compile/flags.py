"""Compiler and linker flags for a spec, without any path in them.

Paths (include and library dirs, the compilers) are added by the ninja writer. Keeping them
out of here lets the cache key hash exactly these flags: any change to how we compile changes
the key, and a checkout or toolkit moved elsewhere does not.
"""

from __future__ import annotations

from dataclasses import dataclass

from torchwheel.compile.build_target import BuildTarget
from torchwheel.spec import JitSpec
from torchwheel.versions import torch_target_version

# Bump when the flag logic changes in a way the lists below do not show.
FLAGS_REVISION = 1


@dataclass(frozen=True)
class SpecFlags:
    cxx: tuple[str, ...]  # torch-free C++ units
    cxx_torch: tuple[str, ...]  # binding units: torch's headers and defines
    nvcc: tuple[str, ...]  # torch-free CUDA units
    nvcc_torch: tuple[str, ...]
    ld: tuple[str, ...]


def spec_flags(spec: JitSpec, target: BuildTarget) -> SpecFlags:
    # Every unit gets torch's ABI flag and standard, torch-free ones too: they are linked into
    # one .so with the binding, and std:: types must agree across that boundary.
    abi = f"-D_GLIBCXX_USE_CXX11_ABI={int(target.torch.cxx11_abi)}"
    stable: tuple[str, ...] = ()
    if spec.torch_abi == "stable":
        assert spec.min_torch is not None  # spec.py requires it
        # No libstdc++ type crosses the stable ABI, so torch's ABI flag does not matter: every
        # stable build uses the new ABI, and one binary serves old- and new-ABI torches alike.
        abi = "-D_GLIBCXX_USE_CXX11_ABI=1"
        # torch's own headers then refuse any non-stable header with an #error naming it, and
        # hide shim functions newer than the minimum (torch/csrc/stable/version.h).
        stable = (f"-DTORCH_TARGET_VERSION={torch_target_version(spec.min_torch)}",)
    std = f"-std=c++{target.cxx_standard}"
    cxx = ("-O3", "-fPIC", "-fvisibility=hidden", std, abi, *stable, *spec.extra_cflags)
    gencode = tuple(flag for arch in target.archs_for(spec) for flag in arch.nvcc_flags())
    nvcc = (
        "-O3",
        std,
        abi,
        *stable,
        "-Xcompiler=-fPIC",
        "-Xcompiler=-fvisibility=hidden",
        # Compressed device code keeps wheels under the index's size limit for longer.
        "-Xfatbin=-compress-all",
        *gencode,
        *spec.extra_cuda_cflags,
    )
    libs: tuple[str, ...] = ()
    if spec.torch_sources:
        libs = ("-lc10", "-ltorch_cpu", "-ltorch")
        if spec.device == "cuda":
            libs += ("-lc10_cuda", "-ltorch_cuda")
    if spec.device == "cuda":
        libs += ("-lcudart",)
    return SpecFlags(
        cxx=cxx,
        cxx_torch=cxx,
        nvcc=nvcc,
        nvcc_torch=nvcc,
        # Stripped: nvcc leaves per-process temporary names in the symbol table, which would make
        # two builds of the same sources differ (and the table is of no use to a loader).
        ld=("-shared", "-s", *spec.extra_ldflags, *libs),
    )
