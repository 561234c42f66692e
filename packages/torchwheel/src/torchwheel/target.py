"""`TorchTarget`: the torch a binary is built for, and the ABI facts taken from it.

ABI facts (the C++11 ABI flag, the C++ standard of torch's headers) come from the target torch
itself, never from constants here: a wrong guess builds a library that fails at import with
`undefined symbol`.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import ToolchainError

_CXX_STANDARD = re.compile(r"CXX_STANDARD\s+(\d+)")

# What a probe prints; it runs inside the target's interpreter, so it only uses torch itself.
_PROBE = """
import json, torch
print(json.dumps({
    "version": torch.__version__,
    "cxx11_abi": bool(torch._C._GLIBCXX_USE_CXX11_ABI),
    "cuda_version": torch.version.cuda,
    "prefix": torch.__path__[0],
}))
"""


@dataclass(frozen=True)
class TorchTarget:
    version: str  # as torch reports it, e.g. "2.13.0+cpu"
    cxx11_abi: bool
    cxx_standard: int
    cuda_version: str | None  # the CUDA that this torch was built with, e.g. "13.0"
    prefix: Path  # torch's package directory

    @property
    def major_minor(self) -> str:
        return ".".join(self.version.split("+")[0].split(".")[:2])

    @property
    def include_dirs(self) -> tuple[Path, ...]:
        include = self.prefix / "include"
        return (include, include / "torch" / "csrc" / "api" / "include")

    @property
    def library_dir(self) -> Path:
        return self.prefix / "lib"

    @classmethod
    def running(cls) -> TorchTarget:
        """The torch imported in this process."""
        import torch

        prefix = Path(torch.__path__[0])
        return cls(
            version=torch.__version__,
            cxx11_abi=bool(torch._C._GLIBCXX_USE_CXX11_ABI),
            cxx_standard=read_cxx_standard(prefix),
            cuda_version=torch.version.cuda,
            prefix=prefix,
        )

    @classmethod
    def probe(cls, python: str | Path) -> TorchTarget:
        """The torch installed for another interpreter (a venv per matrix cell)."""
        result = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise ToolchainError(f"cannot import torch with {python}: {last}; install torch into that environment")
        facts = json.loads(result.stdout.strip().splitlines()[-1])
        prefix = Path(facts["prefix"])
        return cls(
            version=facts["version"],
            cxx11_abi=facts["cxx11_abi"],
            cxx_standard=read_cxx_standard(prefix),
            cuda_version=facts["cuda_version"],
            prefix=prefix,
        )


def read_cxx_standard(prefix: Path) -> int:
    """The C++ standard torch's headers need, as torch's own CMake config declares it."""
    config = prefix / "share" / "cmake" / "Torch" / "TorchConfig.cmake"
    try:
        match = _CXX_STANDARD.search(config.read_text())
    except OSError:
        match = None
    # Torch releases before the CMake property existed all built with C++17.
    return int(match.group(1)) if match else 17
