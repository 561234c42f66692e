"""`JitSpec`: the one declarative description of an extension module.

The same spec drives the ahead-of-time build that fills wheels and the just-in-time build at
run time, so the two cannot drift apart.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from torchwheel.errors import SpecError

NAME_PATTERN = re.compile(r"[a-z0-9_]+")
Device = Literal["cpu", "cuda"]
DEVICES: tuple[Device, ...] = get_args(Device)
CXX_SUFFIXES = frozenset({".cpp", ".cc", ".cxx", ".c"})
CUDA_SUFFIXES = frozenset({".cu"})


def _paths(values: Iterable[str | os.PathLike[str]]) -> tuple[Path, ...]:
    if isinstance(values, (str, os.PathLike)):
        values = [values]
    return tuple(Path(v).absolute() for v in values)


@dataclass(frozen=True)
class JitSpec:
    """One extension module: `<name>.so`, holding the ops its sources register.

    `sources` are translation units that include no torch header (raw pointers, sizes, a
    stream): they compile fast and, built once, serve every torch version of a toolkit.
    `torch_sources` are the thin binding units that include torch headers.
    `root` is the directory that source names are relative to in the cache key and in the
    binary (`-ffile-prefix-map`), so that a checkout's location never changes either.
    """

    name: str
    sources: tuple[Path, ...]
    torch_sources: tuple[Path, ...] = ()
    device: Device = "cpu"
    include_dirs: tuple[Path, ...] = ()
    extra_cflags: tuple[str, ...] = ()
    extra_cuda_cflags: tuple[str, ...] = ()
    extra_ldflags: tuple[str, ...] = ()
    root: Path | None = field(default=None)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "sources", _paths(self.sources))
        set_(self, "torch_sources", _paths(self.torch_sources))
        set_(self, "include_dirs", _paths(self.include_dirs))
        for flags in ("extra_cflags", "extra_cuda_cflags", "extra_ldflags"):
            value = getattr(self, flags)
            set_(self, flags, (value,) if isinstance(value, str) else tuple(value))
        self._validate()
        if self.root is None:
            set_(self, "root", Path(os.path.commonpath([p.parent for p in self.all_sources])))
        else:
            set_(self, "root", Path(self.root).absolute())
            for path in self.all_sources:
                if not path.is_relative_to(self.root):
                    raise SpecError(
                        f"JitSpec {self.name!r}: source {path} is outside root {self.root}; "
                        "move it under the root or choose a root that contains it"
                    )

    @property
    def all_sources(self) -> tuple[Path, ...]:
        return self.sources + self.torch_sources

    def _validate(self) -> None:
        if not isinstance(self.name, str) or not NAME_PATTERN.fullmatch(self.name):
            raise SpecError(
                f"JitSpec name {self.name!r} is invalid; use only lowercase letters, digits and "
                "'_' (it names the .so file and the cache entry)"
            )
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
