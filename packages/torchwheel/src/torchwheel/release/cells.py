"""Building one matrix cell: its specs as one or more parts (prebuilt dirs), each a variant wheel.

A cell is one part, or, when its wheel would exceed the matrix's size limit, a part of its CPU
specs plus one part per GPU architecture family (`<distribution>-sm9x`) that the main wheel
requires, so they install side by side. The parts are planned before anything compiles: a
cell whose accelerator says `split = "arch-family"` is built as families at once; otherwise a
cell found too large after its build is planned again as families (and the line printed says
how to skip that second build).

Cells of one build share a build root: torch-free objects compiled for one cell are reused by
every later cell of the same toolkit, so only the binding units (which include torch's headers)
compile again for another torch version.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from pathlib import Path

from torchwheel.arch import CudaArch, parse_arch_list
from torchwheel.compile.build_target import BuildTarget
from torchwheel.compile.ninja_run import Progress
from torchwheel.compile.toolchain import find_toolchain
from torchwheel.errors import SettingsError, ToolchainError
from torchwheel.project import Project
from torchwheel.release.audit import AuditReport
from torchwheel.release.matrix import VariantCell
from torchwheel.release.prebuilt import AuditSettings, PrebuiltPart, PublishedPart, build_prebuilt
from torchwheel.release.wheel import WheelContents, source_date_epoch, variant_files, write_wheel
from torchwheel.runtime.prebuilt_dirs import variant_dir_name
from torchwheel.runtime.torch_install import TorchInstall
from torchwheel.settings import Settings
from torchwheel.spec import JitSpec

DEFAULT_AUDIT = AuditSettings(policy=None, strict=False)  # torch's own policy; newer glibc only warns


@dataclass(frozen=True)
class CellPlan:
    """The parts of one cell and the distribution of each (same order)."""

    parts: tuple[PrebuiltPart, ...]
    distributions: tuple[str, ...]
    split: bool  # True: parts[0] holds the CPU specs and requires the family parts after it


@dataclass(frozen=True)
class VariantResult:
    cell: VariantCell
    wheels: tuple[Path, ...]  # the cell's wheel first, then its family parts, if any
    steps_run: int
    seconds: float
    audits: tuple[AuditReport, ...]

    @property
    def wheel(self) -> Path:
        return self.wheels[0]


@dataclass(frozen=True)
class CellBuild:
    """Everything a cell's build needs besides the cell; checked before anything compiles."""

    project: Project
    torch: TorchInstall
    build_root: Path
    out_dir: Path
    settings: Settings  # the project's, resolved once by the command (settings.py): toolchain, jobs
    epoch: int  # SOURCE_DATE_EPOCH of the wheels
    version: str  # the project's version, which its wheels carry and pin
    progress: Progress | None = None
    audit: AuditSettings = DEFAULT_AUDIT
    max_wheel_bytes: int | None = None

    @property
    def jobs(self) -> int:
        return self.settings.jobs


def project_version(project: Project) -> str:
    """The installed version of the project's distribution, which its variant wheels pin."""
    if project.version is not None:
        return project.version
    try:
        return installed_version(project.name)
    except PackageNotFoundError:
        raise SettingsError(
            f"project {project.name!r} is not an installed distribution, so its variant wheels have no "
            "version to pin; install it (pip install -e .) before building wheels"
        ) from None


def prepare_cell_build(
    project: Project,
    torch: TorchInstall,
    *,
    build_root: Path,
    out_dir: Path,
    settings: Settings,
    max_wheel_bytes: int | None,
    progress: Progress | None = None,
    audit: AuditSettings = DEFAULT_AUDIT,
) -> CellBuild:
    """Resolve and check everything a cell's build needs that can be wrong before it compiles:
    the project's version, its specs' sources, SOURCE_DATE_EPOCH."""
    version = project_version(project)
    roots = sorted({s.root for s in project.make_specs()})
    epoch = source_date_epoch(roots[0] if roots else None)
    return CellBuild(project, torch, build_root, out_dir, settings, epoch, version, progress, audit, max_wheel_bytes)


def build_variant(cell: VariantCell, build: CellBuild, say: Callable[[str], None] = print) -> VariantResult:
    """Build, audit and wheel the cell: one ninja run for all its parts, each wheel tagged with
    the manylinux policy its audit found. A failing audit writes no wheel."""
    target = _cell_target(cell, build)
    specs = cell_specs(cell, build.project.make_specs(), target.torch)
    plan = plan_parts(cell, specs, target, build.build_root, split=cell.split == "arch-family")
    built = _build_plan(cell, plan, build)
    steps, seconds = built.steps_run, built.seconds
    wheels: tuple[Path, ...] = ()
    if not plan.split and build.max_wheel_bytes is not None:
        # Estimated before any wheel is written (deflate, as the wheel writer compresses), then
        # checked on the wheel itself, whose metadata the estimate leaves out.
        size = sum(_compressed_size(p.part.prebuilt_dir) for p in built.parts)
        if size <= build.max_wheel_bytes:
            wheels = _write_wheels(cell, plan, built.parts, build, check_limit=False)
            size = sum(w.stat().st_size for w in wheels)
        if size > build.max_wheel_bytes:
            for wheel in wheels:
                wheel.unlink()
            limit = f"{build.max_wheel_bytes / 1e6:g} MB"
            say(
                f"{cell.id}: {size / 1e6:.2f} MB, over the limit of {limit}: building it as one part per "
                f'arch family (split = "arch-family" in [accelerators.{cell.accel}] builds it so at once)'
            )
            plan = plan_parts(cell, specs, target, build.build_root, split=True, limit=limit)
            built = _build_plan(cell, plan, build)
            steps, seconds = steps + built.steps_run, seconds + built.seconds
            wheels = ()
    if not wheels:
        wheels = _write_wheels(cell, plan, built.parts, build, check_limit=True)
    return VariantResult(cell, wheels, steps, seconds, tuple(p.audit for p in built.parts if p.audit))


def cell_specs(cell: VariantCell, specs: Sequence[JitSpec], torch: TorchInstall) -> tuple[JitSpec, ...]:
    """The specs a cell builds: those of its devices and its kind of ABI (a project may have both
    kinds; each wheel holds one). A stable cell's torch must be at least its specs' minimum."""
    chosen = tuple(s for s in specs if s.device in cell.devices and s.torch_abi == cell.torch_abi)
    if not chosen:
        raise SettingsError(
            f"cell {cell.id} builds the {cell.torch_abi}-ABI specs of {cell.project}, and it has none for "
            f"{'/'.join(cell.devices)}; set [project] abis in the matrix to the kinds the project has"
        )
    too_new = sorted(
        {s.min_torch for s in chosen if s.min_torch and _series_key(s.min_torch) > _series_key(torch.series)}
    )
    if too_new:
        raise SettingsError(
            f"cell {cell.id} builds against torch {torch.version}, older than its specs' stable minimum "
            f"{too_new[-1]}; build it against a newer torch (the matrix's [project] min_torch keeps it out)"
        )
    return chosen


def _series_key(series: str) -> tuple[int, ...]:
    return tuple(int(part) for part in series.split("."))


def stable_minimum(specs: Sequence[JitSpec]) -> str | None:
    """The torch a stable wheel requires at least: the newest of its specs' minimums."""
    minimums = [s.min_torch for s in specs if s.min_torch is not None]
    return max(minimums, key=_series_key) if minimums else None


def plan_parts(
    cell: VariantCell,
    specs: tuple[JitSpec, ...],
    target: BuildTarget,
    build_root: Path,
    *,
    split: bool,
    limit: str = "the size limit",
) -> CellPlan:
    if not split:
        return CellPlan((_part(cell.id, specs, target, build_root),), (cell.distribution,), False)
    families: dict[int, list[CudaArch]] = {}
    for arch in target.archs:
        families.setdefault(arch.major, []).append(arch)
    if len(families) < 2:
        raise SettingsError(
            f"cell {cell.id}: its archs ({cell.arch_list or 'none'}) form one family, so it cannot be split "
            f"to fit {limit}; raise max_wheel_mb in the matrix"
        )
    cpu = tuple(s for s in specs if s.device != "cuda")
    cuda = tuple(s for s in specs if s.device == "cuda")
    parts = [_part(cell.id, cpu, target.with_archs(()), build_root)]
    distributions = [cell.distribution]
    for major, members in sorted(families.items()):
        parts.append(_part(f"{cell.id}-sm{major}x", cuda, target.with_archs(tuple(members)), build_root))
        distributions.append(f"{cell.distribution}-sm{major}x")
    return CellPlan(tuple(parts), tuple(distributions), True)


def _part(part_id: str, specs: tuple[JitSpec, ...], target: BuildTarget, build_root: Path) -> PrebuiltPart:
    root = build_root.absolute() / part_id
    return PrebuiltPart(part_id, specs, target, root / "build", root / "aot")


def _cell_target(cell: VariantCell, build: CellBuild) -> BuildTarget:
    settings = build.settings
    launcher = settings.compiler_launcher
    toolchain = find_toolchain(settings.cxx, settings.cuda_home, need_cuda=cell.cuda is not None, launcher=launcher)
    if cell.cuda is not None and toolchain.cuda_version != cell.cuda:
        raise ToolchainError(
            f"cell {cell.id} needs CUDA {cell.cuda}, but the toolkit at {toolchain.cuda_home} is "
            f"{toolchain.cuda_version}; set CUDA_HOME to a CUDA {cell.cuda} toolkit"
        )
    archs = parse_arch_list(cell.arch_list) if cell.arch_list else ()
    return BuildTarget.make(build.torch, toolchain, archs)


def _build_plan(cell: VariantCell, plan: CellPlan, build: CellBuild) -> _Built:
    result = build_prebuilt(
        build.project.name,
        plan.parts,
        build.build_root.absolute() / cell.id,
        jobs=build.jobs,
        progress=build.progress,
        shared_dir=build.build_root.absolute(),
        audit=build.audit,
        replace=True,
    )
    return _Built(result.parts, result.steps_run, result.seconds)


@dataclass(frozen=True)
class _Built:
    parts: tuple[PublishedPart, ...]
    steps_run: int
    seconds: float


def _compressed_size(prebuilt_dir: Path) -> int:
    """What a prebuilt dir adds to a wheel (deflate, as the wheel writer compresses)."""
    return sum(len(zlib.compress(p.read_bytes(), 6)) for p in sorted(prebuilt_dir.rglob("*")) if p.is_file())


def _write_wheels(
    cell: VariantCell, plan: CellPlan, parts: Sequence[PublishedPart], build: CellBuild, *, check_limit: bool
) -> tuple[Path, ...]:
    wheels = []
    requires_parts = tuple(f"{d}=={build.version}" for d in plan.distributions[1:]) if plan.split else ()
    for index, (published, distribution) in enumerate(zip(parts, plan.distributions, strict=True)):
        extra = requires_parts if index == 0 else ()
        wheel = _write_wheel(published, distribution, extra, build)
        if check_limit and build.max_wheel_bytes is not None and wheel.stat().st_size > build.max_wheel_bytes:
            raise SettingsError(
                f"cell {cell.id}: {wheel.name} is {wheel.stat().st_size / 1e6:.1f} MB, over the limit of "
                f"{build.max_wheel_bytes / 1e6:g} MB even as one part per arch family; raise max_wheel_mb in the matrix"
            )
        wheels.append(wheel)
    return tuple(wheels)


def _write_wheel(published: PublishedPart, distribution: str, extra: tuple[str, ...], build: CellBuild) -> Path:
    part, name = published.part, build.project.name
    assert published.audit is not None
    minimum = stable_minimum(part.specs)
    # A full-ABI wheel serves its torch series; a stable one, every torch from its minimum on.
    torch_range, requirement = (
        (f"torch {part.target.torch.series}", f"torch=={part.target.torch.series}.*")
        if minimum is None
        else (f"torch {minimum} and later (stable ABI)", f"torch>={minimum}")
    )
    contents = WheelContents(
        distribution=distribution,
        version=build.version,
        summary=f"Prebuilt {name} kernels for {torch_range} ({part.part_id})",
        description=(
            f"Compiled libraries of `{name}` for {torch_range} ({part.part_id}), and their "
            f"manifest: no Python code. Install `{name}` with it; its loader uses these where "
            "they match the running torch, CUDA and GPU, and compiles what they lack on first use.\n"
        ),
        requires=(requirement, f"{name}=={build.version}", *extra),
        files=variant_files(
            part.prebuilt_dir, variant_dir_name(name, part.part_id), [e.name for e in published.entries]
        ),
        tag=f"py3-none-{published.audit.platform_tag}",
    )
    return write_wheel(contents, build.out_dir, build.epoch)
