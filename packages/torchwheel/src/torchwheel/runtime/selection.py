"""Choosing a prebuilt binary: never load one that does not match the running process.

A match needs the same torch major.minor and C++11 ABI; for CUDA code, the same CUDA major
with a minor no newer than torch's, and machine code for every visible GPU (docs/architecture.md,
"Invariants"); PTX alone only when the user accepts it and the driver is new enough to compile
it. A binary that matches must then pass its sha256 check. Each rejection carries a one-line
reason, which becomes the JIT log line or, with JIT disabled, a line of the error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from torchwheel.arch import coverage, parse_arch_list
from torchwheel.errors import SettingsError
from torchwheel.runtime.gpus import capabilities, driver_cuda_version, visible_gpus
from torchwheel.runtime.manifest import Manifest, ManifestEntry
from torchwheel.runtime.torch_install import TorchInstall
from torchwheel.runtime.trust import trusted_file_problem
from torchwheel.runtime.verify import Verifier
from torchwheel.versions import cuda_pair, torch_series


@dataclass(frozen=True)
class RuntimeEnv:
    """The torch this process runs under, and the GPUs a CUDA binary must run on."""

    torch: TorchInstall
    gpu_capabilities: tuple[tuple[int, int], ...]  # of every visible GPU; () when not asked
    driver_cuda_version: str | None = None  # the newest CUDA the driver runs; None when not asked

    @classmethod
    def current(cls, *, with_gpus: bool) -> RuntimeEnv:
        # Asking for GPUs initialises CUDA, so only CUDA specs do it.
        gpus = visible_gpus() if with_gpus else ()
        return cls(TorchInstall.running(), capabilities(gpus), driver_cuda_version() if gpus else None)


@dataclass(frozen=True)
class Candidate:
    manifest: Manifest
    entry: ManifestEntry
    rejection: str | None  # None: usable
    damaged: bool = False  # rejected as broken (bad digest, missing file), not as a mismatch

    def describe(self) -> str:
        where = self.manifest.path_of(self.entry)
        return f"{where}: {self.rejection or 'usable'}"


def rejection_reason(
    entry: ManifestEntry,
    runtime: RuntimeEnv,
    *,
    accept_ptx: bool = False,
    accept_ptx_variable: str = "TORCHWHEEL_ACCEPT_PTX",
) -> str | None:
    """Why this prebuilt binary must not be loaded here, or None when it may."""
    if problem := _torch_mismatch(entry, runtime.torch):
        return problem
    if entry.device != "cuda":
        return None
    if problem := _cuda_mismatch(entry, runtime.torch):
        return problem
    return _gpu_mismatch(entry, runtime, accept_ptx, accept_ptx_variable)


def _torch_mismatch(entry: ManifestEntry, torch: TorchInstall) -> str | None:
    if entry.torch_abi == "stable":
        return _stable_mismatch(entry, torch)
    try:
        built_for = torch_series(entry.torch_version)
    except ValueError:
        return f"manifest torch_version {entry.torch_version!r} is malformed"
    if built_for != torch.series:
        return f"built for torch {built_for}, running torch is {torch.version}"
    if entry.cxx11_abi != torch.cxx11_abi:
        return f"built with _GLIBCXX_USE_CXX11_ABI={int(entry.cxx11_abi)}, running torch uses {int(torch.cxx11_abi)}"
    return None


def _stable_mismatch(entry: ManifestEntry, torch: TorchInstall) -> str | None:
    """A stable-ABI binary loads into its minimum torch and every later one. The C++11 ABI flag
    is not compared: only C types and the C shim cross the boundary, no libstdc++ type."""
    assert entry.min_torch is not None  # manifest.py requires it of a stable entry
    minimum = tuple(int(part) for part in entry.min_torch.split("."))
    running = tuple(int(part) for part in torch.series.split("."))
    if running < minimum:
        return f"built for the torch stable ABI >= {entry.min_torch}, running torch is {torch.version}"
    return None


def _cuda_mismatch(entry: ManifestEntry, torch: TorchInstall) -> str | None:
    if torch.cuda_version is None:
        return "built for CUDA, running torch has no CUDA"
    if entry.cuda_version is None:
        return "manifest names no CUDA version for a CUDA binary"
    built, running = cuda_pair(entry.cuda_version), cuda_pair(torch.cuda_version)
    if built is None:
        return f"manifest cuda_version {entry.cuda_version!r} is malformed"
    if running is None:
        return f"running torch's CUDA version {torch.cuda_version!r} is not understood"
    if built[0] != running[0]:
        return f"built for CUDA {entry.cuda_version}, running torch uses CUDA {torch.cuda_version}"
    if built[1] > running[1]:
        return f"built for CUDA {entry.cuda_version}, newer than running torch's CUDA {torch.cuda_version}"
    return None


def _gpu_mismatch(entry: ManifestEntry, runtime: RuntimeEnv, accept_ptx: bool, accept_ptx_variable: str) -> str | None:
    try:
        archs = parse_arch_list(";".join(entry.arch_list))
    except SettingsError:
        return f"manifest arch list {entry.arch_list!r} is malformed"
    for major, minor in runtime.gpu_capabilities:
        covered = coverage(archs, major, minor)
        if covered is None:
            return f"has no code for this GPU (sm_{major}{minor}); built for {';'.join(entry.arch_list)}"
        if covered == "ptx" and (
            problem := _ptx_problem(entry, runtime, f"sm_{major}{minor}", accept_ptx, accept_ptx_variable)
        ):
            return problem
    return None


def _ptx_problem(entry: ManifestEntry, runtime: RuntimeEnv, sm: str, accept_ptx: bool, variable: str) -> str | None:
    only_ptx = f"has only PTX for this GPU ({sm})"
    if not accept_ptx:
        return (
            f"{only_ptx}, which the driver would compile at every start; building native "
            f"code instead ({variable}=1 loads the PTX)"
        )
    driver = cuda_pair(runtime.driver_cuda_version)
    if driver is None:
        return f"{only_ptx}, and the driver's CUDA version is unknown, so it may not compile it"
    built = cuda_pair(entry.cuda_version)
    if built is not None and driver < built:
        return (
            f"{only_ptx}, made by CUDA {entry.cuda_version}, newer than the driver's CUDA "
            f"{runtime.driver_cuda_version}, which cannot compile it"
        )
    return None


def _file_problem(manifest: Manifest, entry: ManifestEntry) -> str | None:
    path = PurePosixPath(entry.file)
    if path.is_absolute() or ".." in path.parts or not entry.file:
        return f"manifest file {entry.file!r} is not a path inside the manifest's directory"
    return trusted_file_problem(manifest.directory, entry.file)


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
        if candidate.rejection is None and (problem := _file_problem(manifest, entry)):
            candidate = replace(candidate, rejection=problem, damaged=True)
        if candidate.rejection is None and verifier is not None and not chosen:
            if problem := verifier.problem(manifest.path_of(entry), entry.sha256):
                candidate = replace(candidate, rejection=problem, damaged=True)
            else:
                chosen = True
        found.append(candidate)
    return found
