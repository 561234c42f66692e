"""`JitSpec`: the one declarative description of an extension module.

The same spec drives the ahead-of-time build that fills wheels and the just-in-time build at
run time, so the two cannot drift apart.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from torchwheel.errors import SpecError

NAME_PATTERN = re.compile(r"[a-z0-9_]+")
Device = Literal["cpu", "cuda"]
DEVICES: tuple[Device, ...] = get_args(Device)
# How the binding units reach torch. "full": any torch header (ATen, c10, torch/library.h); the
# binary loads into the one torch release it was built against. "stable": only torch's stable
# ABI (torch/csrc/stable, torch/headeronly, the C shim), compiled with -DTORCH_TARGET_VERSION set
# to `min_torch`; the binary loads into every torch from `min_torch` on.
TorchAbi = Literal["full", "stable"]
TORCH_ABIS: tuple[TorchAbi, ...] = get_args(TorchAbi)
SERIES_PATTERN = re.compile(r"[0-9]+\.[0-9]+")
CXX_SUFFIXES = frozenset({".cpp", ".cc", ".cxx", ".c"})
CUDA_SUFFIXES = frozenset({".cu"})


PathArg = str | os.PathLike[str]
PathsArg = PathArg | Iterable[PathArg]
FlagsArg = str | Iterable[str]


def _paths(values: PathsArg) -> tuple[Path, ...]:
    items = [values] if isinstance(values, (str, os.PathLike)) else list(values)
    return tuple(Path(v).absolute() for v in items)


def _flags(values: FlagsArg) -> tuple[str, ...]:
    return (values,) if isinstance(values, str) else tuple(values)


@dataclass(frozen=True, init=False)
class JitSpec:
    """One extension module: `<name>.so`, holding the ops its sources register.

    `sources` are translation units that include no torch header (raw pointers, sizes, a
    stream): they compile fast and, built once, serve every torch version of a toolkit.
    `torch_sources` are the thin binding units that include torch headers. A spec may have
    only one kind: a single binding unit that holds the kernels too is the usual start.
    `root` is the directory that source names are relative to in the cache key and in the
    binary (`-ffile-prefix-map`), so that a checkout's location never changes either; by
    default, the sources' common directory. `torch_abi` and `min_torch`: see `TorchAbi`.
    """

    name: str
    sources: tuple[Path, ...]
    torch_sources: tuple[Path, ...]
    device: Device
    include_dirs: tuple[Path, ...]
    extra_cflags: tuple[str, ...]
    extra_cuda_cflags: tuple[str, ...]
    extra_ldflags: tuple[str, ...]
    root: Path
    torch_abi: TorchAbi
    min_torch: str | None  # major.minor; set exactly for a stable spec

    def __init__(
        self,
        name: str,
        sources: PathsArg = (),
        torch_sources: PathsArg = (),
        device: Device = "cpu",
        include_dirs: PathsArg = (),
        extra_cflags: FlagsArg = (),
        extra_cuda_cflags: FlagsArg = (),
        extra_ldflags: FlagsArg = (),
        root: PathArg | None = None,
        torch_abi: TorchAbi = "full",
        min_torch: str | None = None,
    ) -> None:
        set_ = object.__setattr__  # frozen: fields are set once, here
        set_(self, "name", name)
        set_(self, "sources", _paths(sources))
        set_(self, "torch_sources", _paths(torch_sources))
        set_(self, "device", device)
        set_(self, "include_dirs", _paths(include_dirs))
        set_(self, "extra_cflags", _flags(extra_cflags))
        set_(self, "extra_cuda_cflags", _flags(extra_cuda_cflags))
        set_(self, "extra_ldflags", _flags(extra_ldflags))
        set_(self, "torch_abi", torch_abi)
        set_(self, "min_torch", min_torch)
        self._validate()
        if root is None:
            set_(self, "root", Path(os.path.commonpath([p.parent for p in self.all_sources])))
            return
        set_(self, "root", Path(root).absolute())
        for path in self.all_sources:
            if not path.is_relative_to(self.root):
                raise SpecError(
                    f"JitSpec {self.name!r}: source {path} is outside root {self.root}; "
                    "move it under the root or choose a root that contains it"
                )

    @property
    def all_sources(self) -> tuple[Path, ...]:
        return self.sources + self.torch_sources

    def _validate_abi(self) -> None:
        if self.torch_abi not in TORCH_ABIS:
            raise SpecError(f"JitSpec {self.name!r}: torch_abi {self.torch_abi!r} is unknown; use one of {TORCH_ABIS}")
        if self.torch_abi == "stable" and not (
            isinstance(self.min_torch, str) and SERIES_PATTERN.fullmatch(self.min_torch)
        ):
            raise SpecError(
                f"JitSpec {self.name!r}: a stable-ABI spec needs min_torch, the oldest torch it loads into, as "
                f'major.minor (got {self.min_torch!r}); pass e.g. min_torch="2.11"'
            )
        if self.torch_abi == "full" and self.min_torch is not None:
            raise SpecError(
                f"JitSpec {self.name!r}: min_torch is for stable-ABI specs; a full-ABI binary loads into the "
                'torch it was built against only: drop min_torch or pass torch_abi="stable"'
            )

    def _validate(self) -> None:
        if not isinstance(self.name, str) or not NAME_PATTERN.fullmatch(self.name):
            raise SpecError(
                f"JitSpec name {self.name!r} is invalid; use only lowercase letters, digits and "
                "'_' (it names the .so file and the cache entry)"
            )
        self._validate_abi()
        if self.device not in DEVICES:
            raise SpecError(f"JitSpec {self.name!r}: device {self.device!r} is unknown; use one of {DEVICES}")
        if not self.all_sources:
            raise SpecError(f"JitSpec {self.name!r} has no sources; give at least one .cpp or .cu")
        allowed = CXX_SUFFIXES | (CUDA_SUFFIXES if self.device == "cuda" else frozenset())
        for path in self.all_sources:
            if path.suffix not in allowed:
                hint = "set device='cuda'" if path.suffix in CUDA_SUFFIXES else "rename it"
                raise SpecError(
                    f"JitSpec {self.name!r}: source {path.name} has suffix {path.suffix!r}, "
                    f"which a {self.device} spec cannot compile; {hint}"
                )
            if not path.is_file():
                raise SpecError(f"JitSpec {self.name!r}: source {path} does not exist; fix the path or add the file")
        for directory in self.include_dirs:
            if not directory.is_dir():
                raise SpecError(f"JitSpec {self.name!r}: include dir {directory} does not exist; fix the path")


def check_unique_names(specs: Iterable[JitSpec]) -> None:
    """Raise if two specs of one project share a name (they would share a .so and cache entry)."""
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise SpecError(f"JitSpec name {spec.name!r} appears twice in one project; give each spec its own name")
        seen.add(spec.name)
