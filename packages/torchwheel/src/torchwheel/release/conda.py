"""Conda packages from the matrix: one `.conda` per cell, and noarch packages for the library and
torchwheel, written into a channel directory (`<out>/linux-64/`, `<out>/noarch/`).

**Made with `rattler_build.assemble_package`, not a generated `recipe.yaml`.** A cell's files are
already built and audited (they are the cell's variant wheel's bytes, read from that wheel), so
there is nothing left to build: a recipe would run a build script in a fresh environment that
rattler-build must solve first (its host and run dependencies: pytorch, python), which needs the
dependencies' packages at hand and a network here has not, and it would copy the files once more
through a script that could drift from the wheel's. `assemble_package` takes the files and the
metadata as they are and writes no time or path of this machine (its timestamp is the wheels'
SOURCE_DATE_EPOCH), so packages are byte-identical from any checkout.

**Layout.** A cell's `.so` files are python-independent (no Python C API), as its `py3-none`
wheel is, so its package is one per platform (`linux-64`), not one per Python: its prebuilt dirs
go to `$PREFIX/share/<project>-prebuilt/<project>.<part>.prebuilt/`, and the library's noarch
package carries `site-packages/<project>-prebuilt.pth`, which puts that directory on `sys.path`,
where the loader looks for prebuilt dirs (runtime/prebuilt_dirs.py). A `noarch: python` cell
package would land in site-packages directly, but a noarch package is offered to every platform,
and these files are x86-64 (or aarch64) code.

**Choosing a variant.** Every cell of a project is one package name, `<project>-prebuilt`, one
build each (build string `<cell id>_<build number>`), so a user asks for `minfer-prebuilt` and the
solver picks the build: a CUDA build depends on the virtual package `__cuda >=X` and on
`cuda-version >=X.Y,<X+1`; a host without `__cuda` cannot take it. Where both can install, the
solver takes the highest build number, so CUDA builds get `CUDA_BUILD_OFFSET` (200, as
conda-forge's pytorch and its CUDA packages do): on a CUDA host the CUDA build wins. Between CUDA
builds of one torch, the `cuda-version` of the environment (which conda-forge's CUDA pytorch
builds pin) decides.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from packaging.requirements import InvalidRequirement, Requirement

from torchwheel.errors import SettingsError, ToolchainError
from torchwheel.release.matrix import VariantCell
from torchwheel.runtime.prebuilt_dirs import PREBUILT_SUFFIX

if TYPE_CHECKING:
    from torchwheel.release.cells import VariantResult

Subdir = Literal["linux-64", "linux-aarch64", "noarch"]
# The conda subdir of each machine a manylinux tag names (the audit's platform tag says which).
_SUBDIRS: dict[str, Subdir] = {"x86_64": "linux-64", "aarch64": "linux-aarch64"}
# conda-forge's offset for CUDA builds: above every CPU build of the same version, so they win
# wherever `__cuda` lets them install.
CUDA_BUILD_OFFSET = 200
# PyPI names whose conda-forge package is named otherwise; any other name is taken as it is.
CONDA_NAMES = {"torch": "pytorch"}
_GLIBC = re.compile(r"GLIBC_(\d+)\.(\d+)")
_MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_([a-z0-9_]+)")
# A dist-info's files that an installer writes, not the wheel: a conda package leaves them out.
_INSTALLER_FILES = frozenset({"INSTALLER", "REQUESTED", "RECORD", "direct_url.json"})


@dataclass(frozen=True)
class CondaPackage:
    path: Path
    name: str
    version: str
    build: str
    subdir: Subdir
    depends: tuple[str, ...]


def prebuilt_package_name(project: str) -> str:
    """The one package name that every cell of `project` is a build of."""
    return f"{project.lower()}-prebuilt"


def prebuilt_share_dir(project: str) -> str:
    """Where a cell package puts its prebuilt dirs, relative to the environment's prefix."""
    return f"share/{prebuilt_package_name(project)}"


def build_number(cell: VariantCell) -> int:
    return 0 if cell.cuda is None else CUDA_BUILD_OFFSET


def cell_depends(cell: VariantCell, project: str, version: str, glibc: str) -> tuple[str, ...]:
    """A cell's run dependencies, as conda-forge writes them."""
    torch = f"pytorch >={cell.min_torch}" if cell.torch_abi == "stable" else f"pytorch {cell.torch_series}.*"
    depends = [f"{project.lower()} =={version}", torch, f"__glibc >={glibc}"]
    if cell.cuda is not None:
        major = int(cell.cuda.split(".")[0])
        depends += [f"cuda-version >={cell.cuda},<{major + 1}", f"__cuda >={major}"]
    return tuple(depends)


def glibc_minimum(result: VariantResult) -> str:
    """The newest glibc symbol version any of the cell's files needs, as the audit found it;
    where no file names one, the glibc of the manylinux policy they meet."""
    found = [
        (int(m[1]), int(m[2]))
        for audit in result.audits
        for file in audit.files
        if file.policy.glibc and (m := _GLIBC.fullmatch(file.policy.glibc))
    ]
    if not found:
        found = [(int(m[1]), int(m[2])) for a in result.audits if (m := _MANYLINUX.fullmatch(a.platform_tag))]
    major, minor = max(found, default=(2, 17))  # 2.17: conda-forge's own floor
    return f"{major}.{minor}"


def subdir_of(cell: VariantCell, result: VariantResult) -> Subdir:
    machines = {m[3] for a in result.audits if (m := _MANYLINUX.fullmatch(a.platform_tag))}
    subdirs = {_SUBDIRS.get(machine) for machine in machines}
    if len(subdirs) != 1 or None in subdirs:
        tags = ", ".join(sorted(a.platform_tag for a in result.audits))
        raise SettingsError(
            f"cell {cell.id}: its audit tags ({tags}) name no single linux machine that conda has a subdir "
            f"for ({', '.join(_SUBDIRS)}); build it on one of those"
        )
    (subdir,) = subdirs
    assert subdir is not None
    return subdir


def write_cell_package(
    cell: VariantCell, result: VariantResult, *, version: str, channel: Path, stage: Path, epoch: int
) -> CondaPackage:
    """The cell's `.conda`, holding exactly the files of its wheels (the audited prebuilt dirs)."""
    subdir = subdir_of(cell, result)
    depends = cell_depends(cell, cell.project, version, glibc_minimum(result))
    number = build_number(cell)
    files = _stage_wheels(result.wheels, stage / "files", prebuilt_share_dir(cell.project))
    return _assemble(
        name=prebuilt_package_name(cell.project),
        version=version,
        build=f"{cell.id.replace('-', '_')}_{number}",
        number=number,
        subdir=subdir,
        depends=depends,
        files=files,
        summary=f"Prebuilt {cell.project} kernels for {cell.torch_range} ({cell.id})",
        channel=channel,
        stage=stage,
        epoch=epoch,
    )


def _stage_wheels(wheels: Sequence[Path], into: Path, share: str) -> dict[str, Path]:
    """The prebuilt dirs of the wheels, unpacked under `into`: package path -> staged file."""
    shutil.rmtree(into, ignore_errors=True)
    files: dict[str, Path] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for name in sorted(archive.namelist()):
                top = name.split("/", 1)[0]
                if not top.endswith(PREBUILT_SUFFIX):  # the dist-info: pip's, not conda's
                    continue
                target = into / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(name))
                target.chmod(0o755 if name.endswith(".so") else 0o644)
                files[f"{share}/{name}"] = target
    return files


def write_noarch_package(
    distribution: str, *, channel: Path, stage: Path, epoch: int, pth_to: str | None = None
) -> CondaPackage:
    """A `noarch: python` package of an installed pure-Python distribution: the files its wheel
    installed (each checked against its RECORD hash), its console scripts, and, for a library
    with prebuilt cells, the `.pth` line that puts their share dir on `sys.path`."""
    dist = _installed(distribution)
    name = dist.metadata["Name"].lower()
    files = _distribution_files(dist, name)
    shutil.rmtree(stage / "extra", ignore_errors=True)
    (stage / "extra").mkdir(parents=True)
    if pth_to is not None:
        # site-packages is $PREFIX/lib/pythonX.Y/site-packages: three levels below the prefix.
        pth = stage / "extra" / f"{name}-prebuilt.pth"
        pth.write_text(f"../../../{pth_to}\n")
        files[f"site-packages/{pth.name}"] = pth
    for script in sorted(dist.entry_points.select(group="console_scripts"), key=lambda e: e.name):
        # conda links python-scripts/ of a noarch package into the environment's bin/.
        path = stage / "extra" / script.name
        module, _, attribute = script.value.partition(":")
        path.write_text(
            f"#!/usr/bin/env python\nimport sys\nfrom {module} import {attribute}\n\nsys.exit({attribute}())\n"
        )
        path.chmod(0o755)
        files[f"python-scripts/{script.name}"] = path
    return _assemble(
        name=name,
        version=dist.version,
        build="pyh_0",
        number=0,
        subdir="noarch",
        depends=noarch_depends(dist),
        files=files,
        summary=dist.metadata["Summary"] or name,
        channel=channel,
        stage=stage,
        epoch=epoch,
    )


def installed_distribution(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def _installed(name: str) -> metadata.Distribution:
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        raise SettingsError(
            f"{name} is not an installed distribution, so it has no noarch conda package to make; pip install it"
        ) from None
    direct = dist.read_text("direct_url.json")
    if direct and json.loads(direct).get("dir_info", {}).get("editable"):
        raise SettingsError(
            f"{name} is installed editable, so its files are a checkout's, not a wheel's; "
            f"pip install it without -e to package it for conda"
        )
    return dist


def _distribution_files(dist: metadata.Distribution, name: str) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for entry in dist.files or ():
        parts = entry.parts
        if parts[0] == ".." or "__pycache__" in parts or entry.suffix == ".pyc":
            continue  # scripts (written anew below) and byte code (the installer compiles its own)
        if parts[0].endswith(".dist-info") and parts[-1] in _INSTALLER_FILES:
            continue
        path = Path(str(dist.locate_file(entry)))
        if entry.hash is not None:
            digest = hashlib.new(entry.hash.mode, path.read_bytes()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != entry.hash.value:
                raise SettingsError(
                    f"{name}: {path} differs from what its wheel installed (RECORD hash); "
                    f"reinstall it (pip install --force-reinstall {name}) before packaging it"
                )
        files[f"site-packages/{entry.as_posix()}"] = path
    return files


def noarch_depends(dist: metadata.Distribution) -> tuple[str, ...]:
    """Requires-Python and Requires-Dist as conda dependencies (extras' requirements left out)."""
    depends = []
    if python := dist.metadata["Requires-Python"]:
        depends.append(f"python {python}")
    else:
        depends.append("python")
    for line in dist.requires or ():
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            raise SettingsError(f"{dist.metadata['Name']}: Requires-Dist {line!r} is not a requirement") from None
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        conda_name = CONDA_NAMES.get(requirement.name.lower(), requirement.name.lower())
        depends.append(f"{conda_name} {requirement.specifier}".strip())
    return tuple(depends)


def _assemble(
    *,
    name: str,
    version: str,
    build: str,
    number: int,
    subdir: Subdir,
    depends: tuple[str, ...],
    files: dict[str, Path],
    summary: str,
    channel: Path,
    stage: Path,
    epoch: int,
) -> CondaPackage:
    """Write the package under a temporary dir of the channel, then rename it into its subdir:
    a reader of the channel never sees half a package."""
    require_tools()
    from rattler_build import FileEntry, RattlerBuildError, assemble_package

    temporary = stage / "out"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    try:
        output = assemble_package(
            name=name,
            version=version,
            target_platform=subdir,
            build_string=build,
            output_dir=temporary,
            files=[FileEntry.from_paths(path, dest) for dest, path in sorted(files.items())],
            summary=summary,
            depends=list(depends),
            build_number=number,
            noarch="python" if subdir == "noarch" else None,
            timestamp=datetime.fromtimestamp(epoch, UTC),
            compression_threads=1,  # one zstd stream: the same bytes on any machine
            detect_prefix=False,  # no file holds a build prefix to rewrite on install
        )
    except RattlerBuildError as error:
        raise ToolchainError(f"assembling {name} {version} ({build}) failed: {error}") from None
    final = channel / subdir / output.path.name
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(output.path, final)
    shutil.rmtree(temporary, ignore_errors=True)
    return CondaPackage(final, name, version, build, subdir, depends)


def require_tools() -> None:
    """py-rattler-build and py-rattler are importable: checked before a cell compiles."""
    import importlib.util

    missing = [
        d
        for d, m in (("py-rattler-build", "rattler_build"), ("py-rattler", "rattler"))
        if not importlib.util.find_spec(m)
    ]
    if missing:
        raise ToolchainError(f"torchwheel conda needs {' and '.join(missing)}; pip install {' '.join(missing)}")


def index_channel(channel: Path, say: Callable[[str], None] = print) -> tuple[Path, ...]:
    """Write each subdir's repodata.json with py-rattler's `index_fs`. The channel is checked
    first: a path that is no directory, or a repodata.json that is not JSON (someone's patch,
    a cut-off upload) is one line, and nothing is written."""
    if not channel.exists():
        raise SettingsError(f"channel dir {channel} does not exist; pass the --out dir of torchwheel conda")
    if not channel.is_dir():
        raise SettingsError(f"channel dir {channel} is not a directory; pass the --out dir of torchwheel conda")
    subdirs = sorted(p for p in channel.iterdir() if p.is_dir() and not p.name.startswith("."))
    for subdir in subdirs:
        repodata = subdir / "repodata.json"
        if repodata.exists():
            try:
                json.loads(repodata.read_bytes())
            except (ValueError, OSError) as error:
                raise SettingsError(
                    f"{repodata} is not readable JSON ({error}); remove it and run torchwheel conda index again"
                ) from None
    try:
        import asyncio

        from rattler.index import index_fs
    except ImportError:
        raise ToolchainError("torchwheel conda index needs py-rattler; pip install py-rattler") from None
    (channel / "noarch").mkdir(exist_ok=True)  # a channel has noarch/ even when it holds none
    had_tmp = (channel / ".tmp").exists()
    asyncio.run(index_fs(channel, write_zst=False, write_shards=False))
    if not had_tmp and (channel / ".tmp").is_dir() and not any((channel / ".tmp").iterdir()):
        (channel / ".tmp").rmdir()  # index_fs's scratch dir, empty: not part of a channel
    written = tuple(sorted(channel.glob("*/repodata.json")))
    for repodata in written:
        count = len(json.loads(repodata.read_bytes()).get("packages.conda", {}))
        say(f"indexed {repodata.parent.name}: {count} package(s)")
    return written
