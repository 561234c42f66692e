"""Choosing a prebuilt binary: never load one that does not match the running process.

A match needs the same torch major.minor and C++11 ABI; for CUDA code, the same CUDA major
with a minor no newer than torch's, and machine code for every visible GPU (DESIGN.md,
invariant 1). Each rejection carries a one-line reason, which becomes the JIT log line or,
with JIT disabled, a line of the error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .arch import coverage, parse_arch_list
from .errors import SettingsError
from .manifest import Manifest, ManifestEntry


@dataclass(frozen=True)
class RuntimeEnv:
    torch_version: str
    cxx11_abi: bool
    cuda_version: str | None
    gpu_capabilities: tuple[tuple[int, int], ...]  # of every visible GPU; () when not asked

    @property
    def torch_major_minor(self) -> str:
        return _major_minor(self.torch_version)

    @classmethod
    def current(cls, *, with_gpus: bool) -> RuntimeEnv:
        import torch

        capabilities: tuple[tuple[int, int], ...] = ()
        # Asking for GPUs initialises CUDA, so only CUDA specs do it.
        if with_gpus and torch.cuda.is_available():
            capabilities = tuple(
                sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
            )
        return cls(
            torch_version=torch.__version__,
            cxx11_abi=bool(torch._C._GLIBCXX_USE_CXX11_ABI),
            cuda_version=torch.version.cuda,
            gpu_capabilities=capabilities,
        )


@dataclass(frozen=True)
class Candidate:
    manifest: Manifest
    entry: ManifestEntry
    rejection: str | None  # None: usable

    def describe(self) -> str:
        where = self.manifest.path_of(self.entry)
        return f"{where}: {self.rejection or 'usable'}"


def _major_minor(version: str) -> str:
    return ".".join(version.split("+")[0].split(".")[:2])


def rejection_reason(entry: ManifestEntry, runtime: RuntimeEnv) -> str | None:
    """Why this prebuilt binary must not be loaded here, or None when it may."""
    built_for = _major_minor(entry.torch_version)
    if built_for != runtime.torch_major_minor:
        return f"built for torch {built_for}, running torch is {runtime.torch_version}"
    if entry.cxx11_abi != runtime.cxx11_abi:
        return (
            f"built with _GLIBCXX_USE_CXX11_ABI={int(entry.cxx11_abi)}, running torch uses "
            f"{int(runtime.cxx11_abi)}"
        )
    if entry.device != "cuda":
        return None
    if runtime.cuda_version is None:
        return "built for CUDA, running torch has no CUDA"
    if entry.cuda_version is None:
        return "manifest names no CUDA version for a CUDA binary"
    built_major, built_minor = (int(x) for x in entry.cuda_version.split(".")[:2])
    run_major, run_minor = (int(x) for x in runtime.cuda_version.split(".")[:2])
    if built_major != run_major:
        return f"built for CUDA {entry.cuda_version}, running torch uses CUDA {runtime.cuda_version}"
    if built_minor > run_minor:
        return f"built for CUDA {entry.cuda_version}, newer than running torch's CUDA {runtime.cuda_version}"
    try:
        archs = parse_arch_list(";".join(entry.arch_list))
    except SettingsError:
        return f"manifest arch list {entry.arch_list!r} is malformed"
    for major, minor in runtime.gpu_capabilities:
        covered = coverage(archs, major, minor)
        if covered is None:
            return f"has no code for this GPU (sm_{major}{minor}); built for {';'.join(entry.arch_list)}"
        if covered == "ptx":
            return (
                f"has only PTX for this GPU (sm_{major}{minor}), which the driver would compile "
                "at every start; building native code instead"
            )
    return None


def candidates_for(name: str, manifests: Iterable[Manifest], runtime: RuntimeEnv) -> list[Candidate]:
    found = []
    for manifest in manifests:
        entry = manifest.entries.get(name)
        if entry is not None:
            found.append(Candidate(manifest, entry, rejection_reason(entry, runtime)))
    return found
