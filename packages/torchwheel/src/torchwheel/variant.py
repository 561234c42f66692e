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
from .build import Progress, build_specs
from .errors import ToolchainError
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


def build_variant(
    cell: VariantCell,
    project: Project,
    target: TorchTarget,
    build_root: Path,
    out_dir: Path,
    *,
    jobs: int,
    progress: Progress | None = None,
) -> VariantResult:
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
    package_version = installed_version(project.name)
    torch_series = ".".join(target.version.split("+")[0].split(".")[:2])
    contents = WheelContents(
        distribution=cell.distribution,
        version=package_version,
        summary=f"Prebuilt {project.name} kernels for torch {torch_series} ({cell.accel})",
        requires=(f"torch=={torch_series}.*", f"{project.name}=={package_version}"),
        files=variant_files(aot_dir, f"{project.name}/data/aot/{cell.id}", [e.name for e in entries]),
        tag="py3-none-linux_x86_64",
    )
    roots = {s.root for s in specs}
    wheel = write_wheel(contents, out_dir, source_date_epoch(next(iter(roots)) if roots else None))
    return VariantResult(cell, wheel, aot_dir, result.steps_run, result.seconds)
