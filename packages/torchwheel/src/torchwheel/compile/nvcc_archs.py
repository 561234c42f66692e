"""Which archs a CUDA toolkit's nvcc can compile, and, for one it lacks, which release has it.

What a toolkit offers is asked of its nvcc (`--list-gpu-arch`, toolchain.py); the release
history below only words the errors. Imported by builds and `doctor`, never by a prebuilt load.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from torchwheel.arch import SUFFIX_MIN_MAJOR, CudaArch, field_suffix
from torchwheel.errors import SettingsError

# The CUDA releases whose nvcc offers each arch: (first, last or None while still offered).
# From NVIDIA's release notes (docs/architecture.md has the summary); used only to word errors, since what
# a toolkit offers is asked of its nvcc. An arch missing here gets a generic message.
_RELEASES: dict[tuple[int, int], tuple[tuple[int, int], tuple[int, int] | None]] = {
    (3, 5): ((5, 0), (11, 8)),
    (3, 7): ((6, 5), (11, 8)),
    **{arch: ((6, 0), (12, 9)) for arch in ((5, 0), (5, 2), (5, 3))},
    **{arch: ((8, 0), (12, 9)) for arch in ((6, 0), (6, 1), (6, 2))},
    **{arch: ((9, 0), (12, 9)) for arch in ((7, 0), (7, 2))},
    (7, 5): ((10, 0), None),
    (8, 0): ((11, 0), None),
    (8, 6): ((11, 1), None),
    (8, 7): ((11, 4), None),
    (8, 9): ((11, 8), None),
    (9, 0): ((11, 8), None),
    (10, 0): ((12, 8), None),
    (10, 1): ((12, 8), (12, 9)),  # renamed 11.0 by CUDA 13.0
    (10, 3): ((12, 9), None),
    (11, 0): ((13, 0), None),
    (12, 0): ((12, 8), None),
    (12, 1): ((12, 9), None),
}
_SUFFIX_SINCE = {"a": (12, 0), "f": (12, 9)}  # the first release that knows each suffix


def _version(text: str) -> tuple[int, int]:
    major, minor = (int(x) for x in text.split(".")[:2])
    return major, minor


def _release(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


@dataclass(frozen=True)
class ToolkitArchs:
    """What one toolkit's nvcc can compile for: its release and the sm numbers it lists.

    `nvcc --list-gpu-arch` lists plain archs only (`compute_90`); the `a` and `f` variants exist
    for every listed arch of their generations from the release that introduced the suffix.
    """

    cuda_version: str  # "13.0"
    sms: frozenset[str]  # "75", "90", ... as nvcc lists them (suffixed ones too, where it does)
    nvcc: str  # the nvcc asked, for messages

    @classmethod
    def from_listing(cls, cuda_version: str, listing: Iterable[str], nvcc: str) -> ToolkitArchs:
        sms = {m.group(1) for line in listing if (m := re.fullmatch(r"(?:compute|sm)_(\w+)", line.strip()))}
        return cls(cuda_version, frozenset(sms), nvcc)

    def offers(self, arch: CudaArch) -> bool:
        base = f"{arch.major}{arch.minor}"
        if base not in self.sms:
            return False
        if not arch.suffix or arch.sm in self.sms:
            return True
        return (
            arch.major >= SUFFIX_MIN_MAJOR[arch.suffix] and _version(self.cuda_version) >= (_SUFFIX_SINCE[arch.suffix])
        )

    def listed(self) -> str:
        plain = sorted((s for s in self.sms if s.isdigit()), key=int)
        return ", ".join(f"{s[:-1]}.{s[-1]}" for s in plain)

    def check(self, archs: Iterable[CudaArch], field: str | None = None) -> None:
        """Raise for the first arch this toolkit cannot compile, naming a toolkit that can."""
        for arch in archs:
            if not self.offers(arch):
                raise SettingsError(
                    f"CUDA arch {arch.dotted}{field_suffix(field)} is not offered by nvcc {self.cuda_version} "
                    f"({self.nvcc}); {self.remedy(arch)}"
                )

    def remedy(self, arch: CudaArch) -> str:
        have = _version(self.cuda_version)
        releases = _RELEASES.get((arch.major, arch.minor))
        if releases is None:
            return f"no CUDA release torchwheel knows of has it (this one offers {self.listed()}); check the number"
        first, last = releases
        if arch.suffix and f"{arch.major}{arch.minor}" in self.sms:
            since = max(first, _SUFFIX_SINCE[arch.suffix])
            return (
                f"the '{arch.suffix}' variant needs CUDA {_release(since)} or newer: set CUDA_HOME to "
                f"such a toolkit or write {arch.major}.{arch.minor}"
            )
        if have < first:
            return f"it needs CUDA {_release(first)} or newer: set CUDA_HOME to such a toolkit or drop {arch.dotted}"
        if last is None or have <= last:
            return f"this toolkit offers {self.listed()}: check the arch or the toolkit"
        if (arch.major, arch.minor) == (10, 1):
            return "CUDA 13.0 renamed it 11.0: write 11.0, or use CUDA 12.8 or 12.9"
        return (
            f"CUDA {last[0] + 1} dropped it, the last toolkit with it is CUDA {_release(last)}: "
            f"set CUDA_HOME to such a toolkit or drop {arch.dotted}"
        )

    def native_arch(self, major: int, minor: int) -> CudaArch:
        """The target a JIT build uses for a GPU of this capability: its exact-sm `a` variant
        where there is one (it unlocks that GPU's own instructions), else the plain arch."""
        exact = CudaArch(major, minor, "a")
        if major >= SUFFIX_MIN_MAJOR["a"] and self.offers(exact):
            return exact
        plain = CudaArch(major, minor)
        if self.offers(plain):
            return plain
        releases = _RELEASES.get((major, minor))
        if releases and _version(self.cuda_version) < releases[0]:
            need = f"needs CUDA {_release(releases[0])} or newer"
            fix = "set CUDA_HOME to such a toolkit"
        elif releases and releases[1] is not None:
            need = f"was dropped after CUDA {_release(releases[1])}"
            fix = f"set CUDA_HOME to CUDA {_release(releases[1])} or older"
        else:
            need = "is newer than this toolkit knows"
            fix = "set CUDA_HOME to a newer toolkit"
        raise SettingsError(
            f"this GPU (sm_{major}{minor}) {need}, and nvcc at {self.nvcc} is CUDA {self.cuda_version}; {fix}"
        )
