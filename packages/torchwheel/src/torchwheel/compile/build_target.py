"""`BuildTarget`: what one build compiles for and with: a torch, its C++ standard, the
compilers and the CUDA archs. Every step of a build (flags, key, ninja files, manifest) reads
this one record, so none can disagree with another about what is being built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from torchwheel.arch import CudaArch
from torchwheel.compile.toolchain import Toolchain
from torchwheel.runtime.torch_install import TorchInstall
from torchwheel.spec import JitSpec

_CXX_STANDARD = re.compile(r"CXX_STANDARD\s+(\d+)")


@dataclass(frozen=True)
class BuildTarget:
    torch: TorchInstall
    cxx_standard: int  # of torch's headers, from torch's own CMake config
    toolchain: Toolchain
    archs: tuple[CudaArch, ...]  # for the CUDA specs; () when the build has none

    @classmethod
    def make(cls, torch: TorchInstall, toolchain: Toolchain, archs: tuple[CudaArch, ...] = ()) -> BuildTarget:
        return cls(torch, read_cxx_standard(torch.prefix), toolchain, archs)

    def archs_for(self, spec: JitSpec) -> tuple[CudaArch, ...]:
        """The archs a spec compiles for: the build's for a CUDA spec, none for a CPU one."""
        return self.archs if spec.device == "cuda" else ()

    def with_archs(self, archs: tuple[CudaArch, ...]) -> BuildTarget:
        return BuildTarget(self.torch, self.cxx_standard, self.toolchain, archs)


def read_cxx_standard(prefix: Path) -> int:
    """The C++ standard torch's headers need, as torch's own CMake config declares it."""
    config = prefix / "share" / "cmake" / "Torch" / "TorchConfig.cmake"
    try:
        match = _CXX_STANDARD.search(config.read_text())
    except OSError:
        match = None
    # Torch releases before the CMake property existed all built with C++17.
    return int(match.group(1)) if match else 17
