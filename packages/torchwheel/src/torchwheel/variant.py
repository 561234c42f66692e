"""Building one matrix cell: its specs with one ninja run, published, audited, wheeled.

Cells of one build share a build root: torch-free objects compiled for one cell are reused
by every later cell of the same toolkit, so only the binding units (which include torch's
headers) compile again for another torch version.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path

from .aot import publish_aot
from .arch import CudaArch, parse_arch_list
from .audit import AuditError, AuditReport, audit_paths
from .build import Progress, build_specs
from .errors import SettingsError, ToolchainError
from .manifest import write_manifest
from .matrix import VariantCell
from .project import Project
from .settings import Settings
from .spec import JitSpec
from .target import TorchTarget
from .toolchain import Toolchain, find_toolchain
from .wheel import WheelContents, source_date_epoch, variant_files, write_wheel


@dataclass(frozen=True)
class WheelPart:
    """One wheel of a cell: the whole cell, or (when that is over the size limit) its CPU specs,
    or the CUDA specs built for one GPU architecture family."""

    part_id: str  # "cu130-torch214", "cu130-torch214-sm9x": its prebuilt dir's name
    distribution: str
    specs: tuple[JitSpec, ...]
    archs: tuple[CudaArch, ...]


@dataclass(frozen=True)
class VariantResult:
    cell: VariantCell
    wheels: tuple[Path, ...]  # the cell's wheel first, then its shards, if any
    steps_run: int
    seconds: float
    audits: tuple[AuditReport, ...]

    @property
    def wheel(self) -> Path:
        return self.wheels[0]


def build_variant(
    cell: VariantCell,
    project: Project,
    target: TorchTarget,
    build_root: Path,
    out_dir: Path,
    *,
    jobs: int,
    progress: Progress | None = None,
    policy: str | None = None,
    strict: bool = False,
    max_wheel_bytes: int | None = None,
) -> VariantResult:
    """Build, publish and audit the cell's specs, then write its wheel, tagged with the
    manylinux policy the audit found. A failing audit writes no wheel. A wheel over
    `max_wheel_bytes` is split: its CUDA specs go to one shard per GPU architecture family
    (`<distribution>-sm9x`), which the cell's wheel requires, so they install side by side."""
    settings = Settings.from_env(project.name, project.env_prefix)
    specs = tuple(s for s in project.make_specs() if s.device in cell.devices)
    toolchain = find_toolchain(settings.cxx, settings.cuda_home, need_cuda=cell.cuda is not None)
    if cell.cuda is not None and toolchain.cuda_version != cell.cuda:
        raise ToolchainError(
            f"cell {cell.id} needs CUDA {cell.cuda}, but the toolkit at {toolchain.cuda_home} is "
            f"{toolchain.cuda_version}; set CUDA_HOME to a CUDA {cell.cuda} toolkit"
        )
    archs = parse_arch_list(cell.arch_list) if cell.arch_list else ()
    builder = _PartBuilder(project, target, toolchain, build_root.absolute(), out_dir, jobs, progress, policy, strict)
    whole = builder.build(WheelPart(cell.id, cell.distribution, specs, archs), ())
    if max_wheel_bytes is None or whole.wheel.stat().st_size <= max_wheel_bytes:
        return VariantResult(cell, (whole.wheel,), whole.steps, whole.seconds, (whole.audit,))

    families: dict[int, list[CudaArch]] = {}
    for arch in archs:
        families.setdefault(arch.major, []).append(arch)
    limit = f"{max_wheel_bytes / 1e6:g} MB"
    size = f"{whole.wheel.stat().st_size / 1e6:.1f} MB"
    if len(families) < 2:
        raise SettingsError(
            f"cell {cell.id}: {whole.wheel.name} is {size}, over the limit of {limit}, and its archs "
            f"({cell.arch_list or 'none'}) form one family, so it cannot be split; raise max_wheel_mb in the matrix"
        )
    whole.wheel.unlink()
    cuda_specs = tuple(s for s in specs if s.device == "cuda")
    shards = [
        builder.build(
            WheelPart(f"{cell.id}-sm{major}x", f"{cell.distribution}-sm{major}x", cuda_specs, tuple(members)), ()
        )
        for major, members in sorted(families.items())
    ]
    main = builder.build(
        WheelPart(cell.id, cell.distribution, tuple(s for s in specs if s.device != "cuda"), ()),
        tuple(f"{p.part.distribution}=={builder.version}" for p in shards),
    )
    for built in (main, *shards):
        if built.wheel.stat().st_size > max_wheel_bytes:
            raise SettingsError(
                f"cell {cell.id}: {built.wheel.name} is {built.wheel.stat().st_size / 1e6:.1f} MB even after "
                f"splitting by arch family, over the limit of {limit}; raise max_wheel_mb in the matrix"
            )
    parts = (main, *shards)
    return VariantResult(
        cell,
        tuple(p.wheel for p in parts),
        whole.steps + sum(p.steps for p in parts),
        whole.seconds + sum(p.seconds for p in parts),
        tuple(p.audit for p in parts),
    )


@dataclass(frozen=True)
class _BuiltPart:
    part: WheelPart
    wheel: Path
    audit: AuditReport
    steps: int
    seconds: float


@dataclass(frozen=True)
class _PartBuilder:
    project: Project
    target: TorchTarget
    toolchain: Toolchain
    build_root: Path
    out_dir: Path
    jobs: int
    progress: Progress | None
    policy: str | None
    strict: bool

    @property
    def version(self) -> str:
        return installed_version(self.project.name)

    def build(self, part: WheelPart, extra_requires: tuple[str, ...]) -> _BuiltPart:
        part_dir = self.build_root / part.part_id
        result = build_specs(
            part.specs,
            self.target,
            self.toolchain,
            part.archs,
            part_dir / "build",
            jobs=self.jobs,
            progress=self.progress,
            shared_dir=self.build_root,
        )
        aot_dir = part_dir / "aot"
        shutil.rmtree(aot_dir, ignore_errors=True)  # a part of the same name may have held other specs
        entries = publish_aot(self.project.name, part.specs, result, self.target, self.toolchain, part.archs, aot_dir)
        report = audit_paths([aot_dir], self.target, policy=self.policy, strict=self.strict)
        if not report.passed:
            failing = [f for f in report.files if not f.passed]
            raise AuditError(
                f"{part.part_id}: {len(failing)} of {len(report.files)} files fail the audit, first "
                f"{failing[0].path}: {failing[0].faults[0]}; no wheel written (details: torchwheel audit {aot_dir})"
            )
        # The manifest records the verdict, without paths: which policy, which tag.
        audit_summary = {"policy": report.policy, "platform_tag": report.platform_tag, "strict": self.strict}
        write_manifest(aot_dir, self.project.name, entries, audit=audit_summary)
        torch_series = ".".join(self.target.version.split("+")[0].split(".")[:2])
        contents = WheelContents(
            distribution=part.distribution,
            version=self.version,
            summary=f"Prebuilt {self.project.name} kernels for torch {torch_series} ({part.part_id})",
            description=(
                f"Compiled libraries of `{self.project.name}` for torch {torch_series} ({part.part_id}), and their "
                f"manifest: no Python code. Install `{self.project.name}` with it; its loader uses these where "
                "they match the running torch, CUDA and GPU, and compiles what they lack on first use.\n"
            ),
            requires=(f"torch=={torch_series}.*", f"{self.project.name}=={self.version}", *extra_requires),
            files=variant_files(aot_dir, f"{self.project.name}/data/aot/{part.part_id}", [e.name for e in entries]),
            tag=f"py3-none-{report.platform_tag}",
        )
        roots = {s.root for s in part.specs}
        wheel = write_wheel(contents, self.out_dir, source_date_epoch(next(iter(roots)) if roots else None))
        return _BuiltPart(part, wheel, report, result.steps_run, result.seconds)
