"""Building one matrix cell: its specs with one ninja run, published, audited, wheeled.

Cells of one build share a build root: torch-free objects compiled for one cell are reused
by every later cell of the same toolkit, so only the binding units (which include torch's
headers) compile again for another torch version.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path

from .aot import publish_aot
from .arch import parse_arch_list
from .audit import AuditError, AuditReport, audit_paths
from .build import Progress, build_specs
from .errors import ToolchainError
from .manifest import write_manifest
from .matrix import VariantCell
from .project import Project
from .settings import Settings
from .target import TorchTarget
from .toolchain import find_toolchain
from .wheel import WheelContents, source_date_epoch, variant_files, write_wheel


@dataclass(frozen=True)
class VariantResult:
    cell: VariantCell
    wheel: Path
    aot_dir: Path
    steps_run: int
    seconds: float
    audit: AuditReport


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
) -> VariantResult:
    """Build, publish and audit the cell's specs, then write its wheel, tagged with the
    manylinux policy the audit found. A failing audit writes no wheel."""
    settings = Settings.from_env(project.name, project.env_prefix)
    specs = [s for s in project.make_specs() if s.device in cell.devices]
    toolchain = find_toolchain(settings.cxx, settings.cuda_home, need_cuda=cell.cuda is not None)
    if cell.cuda is not None and toolchain.cuda_version != cell.cuda:
        raise ToolchainError(
            f"cell {cell.id} needs CUDA {cell.cuda}, but the toolkit at {toolchain.cuda_home} is "
            f"{toolchain.cuda_version}; set CUDA_HOME to a CUDA {cell.cuda} toolkit"
        )
    archs = parse_arch_list(cell.arch_list) if cell.arch_list else ()
    build_root = build_root.absolute()
    cell_dir = build_root / cell.id
    result = build_specs(
        specs, target, toolchain, archs, cell_dir / "build", jobs=jobs, progress=progress, shared_dir=build_root
    )
    aot_dir = cell_dir / "aot"
    entries = publish_aot(project.name, specs, result, target, toolchain, archs, aot_dir)
    report = audit_paths([aot_dir], target, policy=policy, strict=strict)
    if not report.passed:
        failing = [f for f in report.files if not f.passed]
        raise AuditError(
            f"cell {cell.id}: {len(failing)} of {len(report.files)} files fail the audit, first "
            f"{failing[0].path}: {failing[0].faults[0]}; no wheel written (details: torchwheel audit {aot_dir})"
        )
    # The manifest records the verdict, without paths: which policy, which tag.
    audit_summary = {"policy": report.policy, "platform_tag": report.platform_tag, "strict": strict}
    write_manifest(aot_dir, project.name, entries, audit=audit_summary)
    package_version = installed_version(project.name)
    torch_series = ".".join(target.version.split("+")[0].split(".")[:2])
    contents = WheelContents(
        distribution=cell.distribution,
        version=package_version,
        summary=f"Prebuilt {project.name} kernels for torch {torch_series} ({cell.accel})",
        requires=(f"torch=={torch_series}.*", f"{project.name}=={package_version}"),
        files=variant_files(aot_dir, f"{project.name}/data/aot/{cell.id}", [e.name for e in entries]),
        tag=f"py3-none-{report.platform_tag}",
    )
    roots = {s.root for s in specs}
    wheel = write_wheel(contents, out_dir, source_date_epoch(next(iter(roots)) if roots else None))
    return VariantResult(cell, wheel, aot_dir, result.steps_run, result.seconds, report)
