"""Publishing a finished build as a prebuilt directory: `<dir>/<name>/<name>.so` + manifest."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .arch import CudaArch
from .build import BuildResult
from .manifest import ManifestEntry, copy_into, sha256_of, write_manifest
from .spec import JitSpec
from .target import TorchTarget
from .toolchain import Toolchain


def publish_aot(
    project: str,
    specs: Sequence[JitSpec],
    result: BuildResult,
    target: TorchTarget,
    toolchain: Toolchain,
    archs: tuple[CudaArch, ...],
    aot_dir: Path,
) -> list[ManifestEntry]:
    """Copy each built .so into `aot_dir` and write the manifest last, so that a reader never
    finds a manifest naming a file that is not there yet."""
    entries = []
    for spec in specs:
        relative = f"{spec.name}/{spec.name}.so"
        copy_into(result.libraries[spec.name], aot_dir / relative)
        cuda = spec.device == "cuda"
        entries.append(
            ManifestEntry(
                name=spec.name,
                file=relative,
                sha256=sha256_of(aot_dir / relative),
                device=spec.device,
                torch_version=target.version,
                cxx11_abi=target.cxx11_abi,
                cuda_version=toolchain.cuda_version if cuda else None,
                arch_list=tuple(str(a) for a in archs) if cuda else (),
            )
        )
    write_manifest(aot_dir, project, entries)
    return entries
