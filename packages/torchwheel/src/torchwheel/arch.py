"""CUDA architecture lists: parsing, nvcc flags, and which code runs on which GPU.

Accepted spellings, joined by ';', ',' or spaces: `9.0`, `9.0a`, `10.0f`, `12.0+PTX` (torch's
TORCH_CUDA_ARCH_LIST form), `sm_90a` (machine code only) and `compute_90` (PTX only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torchwheel.errors import SettingsError

_DOTTED = re.compile(r"(\d+)\.(\d)([af]?)(\+PTX)?", re.IGNORECASE)
_SM = re.compile(r"(sm|compute)_(\d+)(\d)([af]?)")
SUFFIX_MIN_MAJOR = {"a": 9, "f": 10}  # the oldest GPU generation each suffix exists for


@dataclass(frozen=True, order=True)
class CudaArch:
    """One target: machine code (SASS) for `major.minor[suffix]`, PTX for it, or both."""

    major: int
    minor: int
    suffix: str = ""  # "" portable, "a" this exact sm only, "f" this sm's family
    sass: bool = True
    ptx: bool = False

    @property
    def sm(self) -> str:
        return f"{self.major}{self.minor}{self.suffix}"

    @property
    def dotted(self) -> str:
        return f"{self.major}.{self.minor}{self.suffix}"

    def __str__(self) -> str:
        if self.sass and self.ptx:
            return f"{self.dotted}+PTX"
        return self.dotted if self.sass else f"compute_{self.sm}"

    def nvcc_flags(self) -> list[str]:
        flags = []
        if self.sass:
            flags.append(f"-gencode=arch=compute_{self.sm},code=sm_{self.sm}")
        if self.ptx:
            flags.append(f"-gencode=arch=compute_{self.sm},code=compute_{self.sm}")
        return flags

    def runs_natively_on(self, major: int, minor: int) -> bool:
        """Whether this target's machine code runs on a GPU of capability major.minor."""
        if not self.sass or self.major != major:
            return False
        if self.suffix == "a":
            return self.minor == minor
        return self.minor <= minor

    def runs_as_ptx_on(self, major: int, minor: int) -> bool:
        """Whether the driver can JIT this target's PTX for a GPU of capability major.minor."""
        if not self.ptx:
            return False
        if self.suffix == "a":
            return (self.major, self.minor) == (major, minor)
        if self.suffix == "f":
            return self.major == major and self.minor <= minor
        return (self.major, self.minor) <= (major, minor)


def field_suffix(field: str | None) -> str:
    """' in --arch-list', for messages that say where an arch came from."""
    return f" in {field}" if field else ""


def parse_arch(text: str, field: str | None = None) -> CudaArch:
    text = text.strip()
    if match := _DOTTED.fullmatch(text):
        major, minor, suffix, ptx = match.groups()
        arch = CudaArch(int(major), int(minor), suffix.lower(), sass=True, ptx=bool(ptx))
    elif match := _SM.fullmatch(text.lower()):
        kind, major, minor, suffix = match.groups()
        arch = CudaArch(int(major), int(minor), suffix, sass=kind == "sm", ptx=kind == "compute")
    else:
        raise SettingsError(
            f"CUDA arch {text!r}{field_suffix(field)} is not understood; write it as 9.0, 9.0a, 10.0f, "
            "12.0+PTX, sm_90a or compute_90"
        )
    if arch.suffix and arch.major < SUFFIX_MIN_MAJOR[arch.suffix]:
        first = SUFFIX_MIN_MAJOR[arch.suffix]
        raise SettingsError(
            f"CUDA arch {text!r}{field_suffix(field)} does not exist: the '{arch.suffix}' suffix starts at "
            f"{first}.0; write {arch.major}.{arch.minor} instead"
        )
    return arch


def parse_arch_list(text: str, field: str | None = None) -> tuple[CudaArch, ...]:
    """Parse a list into sorted, merged targets (so equal lists give equal cache keys).

    `field` names where the list came from (`--arch-list`, `MINFER_CUDA_ARCH_LIST`), for errors.
    """
    merged: dict[tuple[int, int, str], CudaArch] = {}
    for item in re.split(r"[;,\s]+", text.strip()):
        if not item:
            continue
        arch = parse_arch(item, field)
        key = (arch.major, arch.minor, arch.suffix)
        if old := merged.get(key):
            arch = CudaArch(*key, sass=old.sass or arch.sass, ptx=old.ptx or arch.ptx)
        merged[key] = arch
    if not merged:
        raise SettingsError(
            f"CUDA arch list {text!r}{field_suffix(field)} is empty; name at least one target, e.g. '9.0' or '8.0;9.0a'"
        )
    return tuple(sorted(merged.values()))


def format_arch_list(archs: tuple[CudaArch, ...]) -> str:
    return ";".join(str(a) for a in archs)


def coverage(archs: tuple[CudaArch, ...], major: int, minor: int) -> str | None:
    """'sass' if machine code runs on major.minor, 'ptx' if only PTX does, else None."""
    if any(a.runs_natively_on(major, minor) for a in archs):
        return "sass"
    if any(a.runs_as_ptx_on(major, minor) for a in archs):
        return "ptx"
    return None
