"""The ahead-of-time driver: build parts (specs x target) with one ninja run, audit the fresh
outputs, then publish each part as a prebuilt directory: `<dir>/<name>/<name>.so` + manifest.

`torchwheel build` calls it with one part; a matrix cell (cells.py) with one part per wheel.
The manifest is written once, last, after the audit passed, so a reader never finds a manifest
naming a file that is not there, and a failing audit publishes nothing.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from torchwheel.compile.build_target import BuildTarget
from torchwheel.compile.ninja_run import BuildGroup, Progress, build_groups
from torchwheel.errors import AuditFaults
from torchwheel.runtime.manifest import ManifestEntry, copy_into, sha256_of, write_manifest
from torchwheel.spec import JitSpec

if TYPE_CHECKING:
    from torchwheel.release.audit import AuditReport


@dataclass(frozen=True)
class PrebuiltPart:
    """Specs built for one target: one prebuilt directory, and later one wheel."""

    part_id: str  # "cpu-torch213", "cu130-torch214-sm9x": names its build and prebuilt dirs
    specs: tuple[JitSpec, ...]
    target: BuildTarget
    build_dir: Path  # ninja's outputs: <build_dir>/<name>/<name>.so
    prebuilt_dir: Path  # what is published: <prebuilt_dir>/<name>/<name>.so + manifest.json


@dataclass(frozen=True)
class AuditSettings:
    policy: str | None  # manylinux policy; None: the target torch's own
    strict: bool


@dataclass(frozen=True)
class PublishedPart:
    part: PrebuiltPart
    entries: tuple[ManifestEntry, ...]
    audit: AuditReport | None


@dataclass(frozen=True)
class PrebuiltBuild:
    parts: tuple[PublishedPart, ...]
    steps_run: int
    seconds: float


def build_prebuilt(
    project: str,
    parts: Sequence[PrebuiltPart],
    wrapper_dir: Path,
    *,
    jobs: int,
    progress: Progress | None = None,
    shared_dir: Path | None = None,
    audit: AuditSettings | None = None,
    replace: bool = False,
) -> PrebuiltBuild:
    """Build, audit (where asked) and publish `parts`. `replace` clears each prebuilt dir first
    (a part of the same name may have held other specs)."""
    groups = [BuildGroup(p.specs, p.target, p.build_dir) for p in parts]
    run = build_groups(groups, wrapper_dir, jobs=jobs, progress=progress, shared_dir=shared_dir)
    reports = [audit_part(project, p, g, audit) if audit else None for p, g in zip(parts, groups, strict=True)]
    published = []
    for part, group, report in zip(parts, groups, reports, strict=True):
        if replace:
            shutil.rmtree(part.prebuilt_dir, ignore_errors=True)
        entries = _publish(project, part, group, report)
        published.append(PublishedPart(part, entries, report))
    return PrebuiltBuild(tuple(published), run.steps_run, run.seconds)


def audit_part(project: str, part: PrebuiltPart, group: BuildGroup, settings: AuditSettings) -> AuditReport:
    """Audit a part's fresh build outputs; raise `AuditFaults` (nothing published) if any fails."""
    from torchwheel.release.audit import BuiltAs, audit_files  # pyelftools and auditwheel: build-only

    torch = part.target.torch
    found = [
        (
            f"{part.part_id}/{s.name}/{s.name}.so",
            group.library(s),
            BuiltAs(torch.cxx11_abi if s.torch_abi == "full" else True, s.torch_abi, s.min_torch),
        )
        for s in part.specs
    ]
    report = audit_files(found, part.target.torch, settings.policy, settings.strict)
    if not report.passed:
        failing = [f for f in report.files if not f.passed]
        raise AuditFaults(
            f"{part.part_id}: {len(failing)} of {len(report.files)} files fail the audit, first "
            f"{failing[0].path}: {failing[0].faults[0]}; nothing published "
            f"(details: torchwheel audit {part.build_dir})"
        )
    return report


def _publish(
    project: str, part: PrebuiltPart, group: BuildGroup, report: AuditReport | None
) -> tuple[ManifestEntry, ...]:
    entries = []
    torch, toolchain = part.target.torch, part.target.toolchain
    for spec in part.specs:
        relative = f"{spec.name}/{spec.name}.so"
        copy_into(group.library(spec), part.prebuilt_dir / relative)
        cuda = spec.device == "cuda"
        entries.append(
            ManifestEntry(
                name=spec.name,
                file=relative,
                sha256=sha256_of(part.prebuilt_dir / relative),
                device=spec.device,
                torch_version=torch.version,
                # flags.py builds every stable spec with the new ABI, whatever this torch uses.
                cxx11_abi=torch.cxx11_abi if spec.torch_abi == "full" else True,
                cuda_version=toolchain.cuda_version if cuda else None,
                arch_list=tuple(str(a) for a in part.target.archs_for(spec)),
                torch_abi=spec.torch_abi,
                min_torch=spec.min_torch,
            )
        )
    # The manifest records the audit's verdict, without paths: which policy, which tag.
    summary = None
    if report is not None:
        summary = {"policy": report.policy, "platform_tag": report.platform_tag, "strict": report.strict}
    write_manifest(part.prebuilt_dir, project, entries, audit=summary)
    return tuple(entries)
