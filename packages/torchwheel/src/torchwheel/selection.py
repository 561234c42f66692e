"""Choosing a prebuilt binary: never load one that does not match the running process.

A match needs the same torch major.minor and C++11 ABI; for CUDA code, the same CUDA major
with a minor no newer than torch's, and machine code for every visible GPU (DESIGN.md,
invariant 1); PTX alone only when the user accepts it and the driver is new enough to compile
it. A binary that matches must then pass its sha256 check. Each rejection carries a one-line
reason, which becomes the JIT log line or, with JIT disabled, a line of the error.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from .arch import coverage, parse_arch_list
from .errors import SettingsError
from .manifest import Manifest, ManifestEntry
from .verify import Verifier

_CUDA_VERSION = re.compile(r"(\d+)\.(\d+)(\.\d+)*")


@dataclass(frozen=True)
class RuntimeEnv:
    torch_version: str
    cxx11_abi: bool
    cuda_version: str | None
    gpu_capabilities: tuple[tuple[int, int], ...]  # of every visible GPU; () when not asked
    driver_cuda_version: str | None = None  # the newest CUDA the driver runs; None when not asked

    @property
    def torch_major_minor(self) -> str:
        return _major_minor(self.torch_version)

    @classmethod
    def current(cls, *, with_gpus: bool) -> RuntimeEnv:
        import torch

        capabilities: tuple[tuple[int, int], ...] = ()
        driver = None
        # Asking for GPUs initialises CUDA, so only CUDA specs do it.
        if with_gpus and torch.cuda.is_available():
            capabilities = tuple(
                sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
            )
            driver = driver_cuda_version()
        return cls(
            torch_version=torch.__version__,
            cxx11_abi=bool(torch._C._GLIBCXX_USE_CXX11_ABI),
            cuda_version=torch.version.cuda,
            gpu_capabilities=capabilities,
            driver_cuda_version=driver,
        )


def driver_cuda_version() -> str | None:
    """The CUDA version the installed driver supports ("13.0"), from libcuda itself."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
        version = ctypes.c_int()
        if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return f"{version.value // 1000}.{version.value % 1000 // 10}"


@dataclass(frozen=True)
class Candidate:
    manifest: Manifest
    entry: ManifestEntry
    rejection: str | None  # None: usable
    damaged: bool = False  # rejected as broken (bad digest, missing file), not as a mismatch

    def describe(self) -> str:
        where = self.manifest.path_of(self.entry)
        return f"{where}: {self.rejection or 'usable'}"


def _major_minor(version: str) -> str:
    return ".".join(version.split("+")[0].split(".")[:2])


def _cuda(version: str | None) -> tuple[int, int] | None:
    match = _CUDA_VERSION.fullmatch(version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def rejection_reason(
    entry: ManifestEntry,
    runtime: RuntimeEnv,
    *,
    accept_ptx: bool = False,
    accept_ptx_variable: str = "TORCHWHEEL_ACCEPT_PTX",
) -> str | None:
    """Why this prebuilt binary must not be loaded here, or None when it may."""
    built_for = _major_minor(entry.torch_version)
    if built_for != runtime.torch_major_minor:
        return f"built for torch {built_for}, running torch is {runtime.torch_version}"
    if entry.cxx11_abi != runtime.cxx11_abi:
        return f"built with _GLIBCXX_USE_CXX11_ABI={int(entry.cxx11_abi)}, running torch uses {int(runtime.cxx11_abi)}"
    if entry.device != "cuda":
        return None
    if runtime.cuda_version is None:
        return "built for CUDA, running torch has no CUDA"
    if entry.cuda_version is None:
        return "manifest names no CUDA version for a CUDA binary"
    built, running = _cuda(entry.cuda_version), _cuda(runtime.cuda_version)
    if built is None:
        return f"manifest cuda_version {entry.cuda_version!r} is malformed"
    if running is None:
        return f"running torch's CUDA version {runtime.cuda_version!r} is not understood"
    if built[0] != running[0]:
        return f"built for CUDA {entry.cuda_version}, running torch uses CUDA {runtime.cuda_version}"
    if built[1] > running[1]:
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
            only_ptx = f"has only PTX for this GPU (sm_{major}{minor})"
            if not accept_ptx:
                return (
                    f"{only_ptx}, which the driver would compile at every start; building native "
                    f"code instead ({accept_ptx_variable}=1 loads the PTX)"
                )
            driver = _cuda(runtime.driver_cuda_version)
            if driver is None:
                return f"{only_ptx}, and the driver's CUDA version is unknown, so it may not compile it"
            if driver < built:
                return (
                    f"{only_ptx}, made by CUDA {entry.cuda_version}, newer than the driver's CUDA "
                    f"{runtime.driver_cuda_version}, which cannot compile it"
                )
    return None


def _file_problem(entry: ManifestEntry) -> str | None:
    path = PurePosixPath(entry.file)
    if path.is_absolute() or ".." in path.parts or not entry.file:
        return f"manifest file {entry.file!r} is not a path inside the manifest's directory"
    return None


def candidates_for(
    name: str,
    manifests: Iterable[Manifest],
    runtime: RuntimeEnv,
    *,
    verifier: Verifier | None = None,
    accept_ptx: bool = False,
    accept_ptx_variable: str = "TORCHWHEEL_ACCEPT_PTX",
) -> list[Candidate]:
    """Every installed binary of `name` with its verdict, in search order.

    With a verifier, candidates that match are sha256-checked in order until one passes; those
    after it are left unchecked (they would not be loaded).
    """
    found = []
    chosen = False
    for manifest in manifests:
        entry = manifest.entries.get(name)
        if entry is None:
            continue
        candidate = Candidate(
            manifest,
            entry,
            rejection_reason(entry, runtime, accept_ptx=accept_ptx, accept_ptx_variable=accept_ptx_variable),
        )
        if candidate.rejection is None and (problem := _file_problem(entry)):
            candidate = replace(candidate, rejection=problem, damaged=True)
        if candidate.rejection is None and verifier is not None and not chosen:
            if problem := verifier.problem(manifest.path_of(entry), entry.sha256):
                candidate = replace(candidate, rejection=problem, damaged=True)
            else:
                chosen = True
        found.append(candidate)
    return found
