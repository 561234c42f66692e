"""The `torchwheel` command line."""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import stat
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from torchwheel.errors import BuildError, ExitCode, SettingsError, ToolchainError, TorchwheelError

if TYPE_CHECKING:
    from torchwheel.arch import CudaArch
    from torchwheel.project import Project
    from torchwheel.release.cells import VariantResult
    from torchwheel.release.matrix import Matrix, VariantCell
    from torchwheel.settings import Settings
    from torchwheel.spec import JitSpec


def _build(args: argparse.Namespace) -> int:
    from torchwheel.arch import format_arch_list
    from torchwheel.compile.build_target import BuildTarget
    from torchwheel.compile.toolchain import find_toolchain
    from torchwheel.project import load_project
    from torchwheel.release.prebuilt import PrebuiltPart, build_prebuilt
    from torchwheel.runtime.torch_install import TorchInstall

    out = Path(args.out).absolute()
    # ninja's dir is made before the build; the prebuilt dir, by publishing, once the audit passed.
    build_dir = OutputDir.checked("--out", args.out, out / "build")
    OutputDir.checked("--out", args.out, out / "data" / "aot")
    project = load_project(args.project)
    specs = _selected_specs(project.make_specs(), args.device, args.spec, project.name)
    settings = project.settings({"arch_list": args.arch_list, "max_jobs": args.jobs})
    cpu_specs = [s for s in specs if s.device == "cpu"]
    if (
        args.device == "all"
        and cpu_specs
        and len(cpu_specs) < len(specs)
        and TorchInstall.importable().cuda_version is None
    ):
        # A CPU-only torch cannot link CUDA specs: asked for "all", build the CPU ones and say so.
        # (A selection of CUDA specs only goes on, so that its settings are still checked.)
        print(f"skipping {len(specs) - len(cpu_specs)} CUDA specs: this torch has no CUDA (run under a CUDA torch)")
        specs = cpu_specs
    need_cuda = any(s.device == "cuda" for s in specs)
    archs, source = _build_archs(settings) if need_cuda else ((), None)
    toolchain = find_toolchain(
        settings.cxx, settings.cuda_home, need_cuda=need_cuda, launcher=settings.compiler_launcher
    )
    if need_cuda and (offered := toolchain.cuda_archs()) is not None:
        offered.check(archs, source)  # before anything is written: one line naming a toolkit that has it
    torch = TorchInstall.importable()
    if need_cuda and torch.cuda_version is None:
        raise ToolchainError(
            f"the selected specs are CUDA specs, and this torch ({torch.version}) has no CUDA to link them "
            "against; run under a CUDA torch, or pass --device cpu"
        )
    target = BuildTarget.make(torch, toolchain, archs)
    jobs = settings.jobs
    build_dir.create()  # last before the build: any earlier refusal leaves nothing behind
    prebuilt_dir = out / "data" / "aot"
    print(
        f"building {len(specs)} specs of {project.name} for torch {target.torch.version}"
        + (f", CUDA {toolchain.cuda_version}, archs {format_arch_list(archs)}" if need_cuda else "")
        + f" with ninja -j{jobs}",
        flush=True,
    )
    part = PrebuiltPart("build", tuple(specs), target, out / "build", prebuilt_dir)
    try:
        result = build_prebuilt(project.name, [part], out / "build", jobs=jobs, progress=_print_step(""))
    except BuildError as error:
        print(error.log, file=sys.stderr)
        raise
    (published,) = result.parts
    for entry in published.entries:
        size = (prebuilt_dir / entry.file).stat().st_size
        print(f"  {entry.name:<32} {entry.device:<5} {size / 1024:8.0f} KiB  sha256 {entry.sha256[:12]}")
    print(
        f"built {len(published.entries)} specs ({result.steps_run} build steps) in {result.seconds:.1f} s; "
        f"prebuilt dir: {prebuilt_dir} (use it with {project.env_prefix}_AOT_PATH)"
    )
    return 0


def _selected_specs(specs: Sequence[JitSpec], device: str, patterns: list[str], project: str) -> list[JitSpec]:
    from torchwheel.spec import check_unique_names

    check_unique_names(specs)  # now, before --out is created, not in the build
    chosen = [s for s in specs if device == "all" or s.device == device]
    if patterns:
        chosen = [s for s in chosen if any(fnmatch.fnmatchcase(s.name, p) for p in patterns)]
    if not chosen:
        raise SettingsError(
            f"no {device} spec of {project} matches {' '.join(patterns) or 'anything'}; check --device and --spec"
        )
    return chosen


def _build_archs(settings: Settings) -> tuple[tuple[CudaArch, ...], str | None]:
    from torchwheel.arch import parse_arch_list

    if not settings.arch_list:
        raise SettingsError(
            "no CUDA arch list for the cuda specs; pass --arch-list (e.g. '8.0;9.0a'), set TORCH_CUDA_ARCH_LIST, "
            "or write arch_list in [tool.torchwheel.settings]"
        )
    source = settings.origin("arch_list")
    return parse_arch_list(settings.arch_list, source), source


def _kind(mode: int) -> str:
    kinds = {"-": "a regular file", "d": "a directory", "p": "a FIFO", "c": "a character device", "s": "a socket"}
    return kinds.get(stat.filemode(mode)[0], "a block device")


@dataclass(frozen=True)
class OutputDir:
    """A directory a command writes into, checked before anything is built and created only when
    the build starts, so that a command refused for any reason leaves nothing on disk."""

    option: str  # "--out"
    value: str  # as given
    path: Path  # absolute; `value` itself or a directory the command makes inside it

    @classmethod
    def checked(cls, option: str, value: str, path: Path | None = None) -> OutputDir:
        """Every existing step of the path is a directory, and the deepest one is writable."""
        output = cls(option, value, path or Path(value).absolute())
        deepest = Path("/")
        for step in [*reversed(output.path.parents), output.path]:
            try:
                mode = os.stat(step).st_mode
            except FileNotFoundError:
                break
            except (OSError, ValueError) as error:  # EACCES, ENAMETOOLONG, ELOOP; a NUL byte
                why = error.strerror if isinstance(error, OSError) else str(error)
                raise SettingsError(f"{option} {value} cannot be used ({why}); {output.remedy}") from None
            if not stat.S_ISDIR(mode):
                raise SettingsError(f"{output.where(step)} is {_kind(mode)}, not a directory; {output.remedy}")
            deepest = step
        if not os.access(deepest, os.W_OK | os.X_OK):
            raise SettingsError(f"{output.where(deepest)} is not writable by you; {output.remedy}")
        return output

    @property
    def remedy(self) -> str:
        return f"pass {self.option} a directory you can write (it is made if missing)"

    def where(self, step: Path) -> str:
        return f"{self.option} {self.value}" + ("" if step == Path(self.value).absolute() else f": {step}")

    def create(self) -> Path:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:  # what only trying tells: /proc, a read-only mount, a full disk, root's ENOENT
            raise SettingsError(
                f"{self.option} {self.value} cannot be created ({error.strerror}); {self.remedy}"
            ) from None
        return self.path


def _interpreter(value: str, option: str = "--python") -> Path:
    """`value` as an interpreter to run: an executable regular file (a venv's python is a
    symlink to one), or a bare name found on PATH. Checked here so that a directory or a data
    file is one line naming it, not an error from exec."""
    remedy = "pass the python of an environment with torch, e.g. .venvs/torch-2.14.1/bin/python"
    found = shutil.which(value) if os.sep not in value else value
    if found is None:
        raise SettingsError(f"{option} {value} is not on PATH; {remedy}")
    try:
        mode = os.stat(found).st_mode
    except FileNotFoundError:
        raise SettingsError(f"{option} {value} does not exist; {remedy}") from None
    except (OSError, ValueError) as error:
        why = error.strerror if isinstance(error, OSError) else str(error)
        raise SettingsError(f"{option} {value} cannot be examined ({why}); {remedy}") from None
    if not stat.S_ISREG(mode):
        raise SettingsError(f"{option} {value} is {_kind(mode)}, not an interpreter; {remedy}")
    if not os.access(found, os.X_OK):
        raise SettingsError(f"{option} {value} is not executable; {remedy}")
    return Path(found)


def _print_line(label: str) -> Callable[[str], None]:
    def say(line: str) -> None:
        print(f"{label}{line}", flush=True)

    return say


def _print_step(label: str) -> Callable[[int, int, str], None]:
    def progress(done: int, total: int, what: str) -> None:
        print(f"{label}[{done:>{len(str(total))}}/{total}] {what}", flush=True)

    return progress


_PROJECT_HELP = (
    "the project: its directory or pyproject.toml, an installed project's name, or module:attribute "
    "(default: the [tool.torchwheel] of ./pyproject.toml or above)"
)
_MATRIX_HELP = "matrix file (default: the project's [tool.torchwheel] matrix, else ci/matrix.toml)"


def _load_matrix(path: str | None) -> tuple[Matrix, str]:
    """The matrix named by --matrix, else the current project's (a path or an inline table),
    else ci/matrix.toml; and where it came from, for messages and the workflow."""
    from torchwheel import config
    from torchwheel.release.matrix import load_matrix, parse_matrix

    if path is None and (pyproject := config.find_pyproject(Path.cwd())) is not None:
        declared = config.read_pyproject(pyproject)
        if isinstance(declared.matrix, dict):
            table = {**declared.matrix, "project": {"name": declared.name, **declared.matrix.get("project", {})}}
            return parse_matrix(table, f"{pyproject} [tool.torchwheel.matrix]"), str(pyproject)
        if declared.matrix is not None:
            return load_matrix(declared.matrix), str(declared.matrix)
    chosen = Path(path or "ci/matrix.toml")
    return load_matrix(chosen), str(chosen)


def _project_of_matrix(reference: str | None, name: str) -> Project:
    """--project, else the current directory's project when the matrix is its, else `name` installed."""
    from torchwheel import config
    from torchwheel.project import load_project

    if reference is None and (pyproject := config.find_pyproject(Path.cwd())) is not None:
        declared = config.read_pyproject(pyproject)
        if declared.name == name:
            return declared.project()
    return load_project(reference or name)


def _extras(matrix: Matrix, *, check: bool) -> int:
    """The meta-package's per-cell extras for the current project: printed as TOML, or (--check)
    compared with its pyproject.toml, a drift check for the project's own CI."""
    from torchwheel import config
    from torchwheel.files import read_toml
    from torchwheel.release.matrix import cell_extras, extras_drift

    pyproject = config.find_pyproject(Path.cwd())
    declared = config.read_pyproject(pyproject) if pyproject is not None else None
    if pyproject is None or declared is None or declared.version is None:
        raise SettingsError("matrix extras needs the project's pyproject.toml with its version; run it in the project")
    if not check:
        print("[project.optional-dependencies]")
        for cell, pins in cell_extras(matrix, declared.version).items():
            print(f"{cell} = {json.dumps(pins)}")
        return 0
    optional = read_toml(pyproject, "project file", "fix it").get("project", {}).get("optional-dependencies", {})
    drift = extras_drift(matrix, declared.version, optional if isinstance(optional, dict) else {})
    for line in drift:
        print(f"torchwheel matrix extras: {pyproject}: {line}", file=sys.stderr)
    return int(ExitCode.FAULTS_FOUND) if drift else 0


def _matrix(args: argparse.Namespace) -> int:
    from torchwheel.release.matrix import matrix_json
    from torchwheel.release.workflow import workflow_text

    matrix, where = _load_matrix(args.matrix)
    if args.action == "extras":
        return _extras(matrix, check=args.check)
    if args.action == "ci":
        print(matrix_json(matrix))
    elif args.action == "workflow":
        print(workflow_text(matrix, where), end="")
    elif args.json:
        print(json.dumps({"cells": [c.as_dict() for c in matrix.cells], "excluded": dict(matrix.excluded)}, indent=2))
    else:
        for cell in matrix.cells:
            print(f"{cell.id:<18} {cell.distribution:<28} {cell.torch_range:<34} {cell.arch_list or ''}")
        for cell_id, reason in matrix.excluded:
            print(f"{cell_id:<18} excluded: {reason}")
    return 0


@dataclass(frozen=True)
class _WheelRun:
    """What `torchwheel wheel` was asked for, every value checked before any venv or build."""

    matrix: Matrix
    cells: tuple[VariantCell, ...]
    project: Project
    settings: Settings  # the project's, with this command's options over them
    python: Path | None  # the python setting; None: a venv per torch version under envs
    out: OutputDir
    build_dir: OutputDir
    envs: OutputDir | None  # --envs-dir, where no --python is given

    def interpreter(self, cell: VariantCell) -> Path:
        from torchwheel.release.envs import cell_environment

        if self.python is not None:
            return self.python
        assert self.envs is not None  # set wherever python is not
        return cell_environment(cell, self.envs.create())


def _wheel_run(args: argparse.Namespace) -> _WheelRun:
    from torchwheel.release.wheel import source_date_epoch

    matrix, _ = _load_matrix(args.matrix)
    cells = tuple(matrix.cell(c) for c in args.cell)
    project = _project_of_matrix(args.project, matrix.project)
    options = {"max_jobs": args.jobs, "build_dir": args.build_dir, "envs_dir": args.envs_dir, "python": args.python}
    settings = project.settings(options)
    python_from = settings.named("python")
    if settings.python and len(cells) > 1:
        raise SettingsError(f"{python_from} serves one cell; build one --cell at a time with it")
    python = _interpreter(settings.python, python_from) if settings.python else None
    source_date_epoch()  # a malformed SOURCE_DATE_EPOCH, refused now rather than after the build
    out = OutputDir.checked("--out", args.out)
    build_dir = OutputDir.checked(settings.named("build_dir"), settings.build_dir)
    envs = None if python else OutputDir.checked(settings.named("envs_dir"), settings.envs_dir)
    return _WheelRun(matrix, cells, project, settings, python, out, build_dir, envs)


def _wheel(args: argparse.Namespace) -> int:
    import time

    from torchwheel.release.cells import build_variant, prepare_cell_build
    from torchwheel.release.envs import cell_target
    from torchwheel.release.prebuilt import AuditSettings

    run = _wheel_run(args)
    started = time.monotonic()
    for number, cell in enumerate(run.cells, 1):
        label = f"cell {number}/{len(run.cells)} {cell.id}"
        python = run.interpreter(cell)
        torch = cell_target(cell, python)
        build = prepare_cell_build(
            run.project,
            torch,
            build_root=run.build_dir.path,
            out_dir=run.out.path,
            settings=run.settings,
            max_wheel_bytes=run.matrix.max_wheel_bytes,
            progress=_print_step(f"{label} "),
            audit=AuditSettings(args.policy, args.strict),
        )
        run.out.create()
        run.build_dir.create()
        print(f"{label}: torch {torch.version} from {python}", flush=True)
        try:
            result = build_variant(cell, build, say=_print_line(f"{label}: "))
        except BuildError as error:
            print(error.log, file=sys.stderr)
            raise
        _report_cell(label, result)
    print(f"built {len(run.cells)} wheel(s) in {time.monotonic() - started:.1f} s into {run.out.path}")
    return 0


def _report_cell(label: str, result: VariantResult) -> None:
    for audit in result.audits:
        for warning in sorted({w for f in audit.files for w in f.warnings}):
            print(f"{label}: audit warning: {warning}", flush=True)
        print(f"{label}: audit passed, {len(audit.files)} files; tag {audit.platform_tag}", flush=True)
    for wheel in result.wheels:
        print(f"{label}: {wheel.name} ({wheel.stat().st_size / 1e6:.1f} MB)", flush=True)
    print(f"{label}: {result.steps_run} build steps in {result.seconds:.1f} s", flush=True)


def _conda(args: argparse.Namespace) -> int:
    """`torchwheel conda --cell ...`: each cell built as `torchwheel wheel` builds it (same build
    dir, so a cell `wheel` built is a ninja no-op), then its `.conda` from that wheel's files;
    `torchwheel conda index DIR`: the channel's repodata."""
    from torchwheel.release import conda

    if args.action == "index":
        if not args.channel:
            raise SettingsError("torchwheel conda index needs the channel dir; pass it: torchwheel conda index DIR")
        conda.index_channel(Path(args.channel).absolute())
        return 0
    if args.channel or not args.cell:
        raise SettingsError("torchwheel conda builds cells: pass --cell ID (repeatable), or run: conda index DIR")
    from torchwheel.release.cells import build_variant, prepare_cell_build
    from torchwheel.release.envs import cell_target
    from torchwheel.release.prebuilt import AuditSettings

    run = _wheel_run(args)
    conda.require_tools()  # before any compile
    channel = run.out.create()  # what only trying tells (/proc, a read-only mount), before any venv or build
    epoch = None
    for number, cell in enumerate(run.cells, 1):
        label = f"cell {number}/{len(run.cells)} {cell.id}"
        stage = run.build_dir.path / "conda" / cell.id
        torch = cell_target(cell, run.interpreter(cell))
        build = prepare_cell_build(
            run.project, torch, build_root=run.build_dir.path, out_dir=stage / "wheels", settings=run.settings,
            max_wheel_bytes=None, progress=_print_step(f"{label} "), audit=AuditSettings(args.policy, args.strict),
        )  # fmt: skip
        run.build_dir.create()
        shutil.rmtree(stage / "wheels", ignore_errors=True)  # a wheel of another version is not this cell's
        result = build_variant(cell, build, say=_print_line(f"{label}: "))
        for warning in sorted({w for audit in result.audits for f in audit.files for w in f.warnings}):
            print(f"{label}: audit warning: {warning}", flush=True)  # what the __glibc pin comes from
        package = conda.write_cell_package(
            cell, result, version=build.version, channel=channel, stage=stage, epoch=build.epoch
        )
        epoch = build.epoch
        print(f"{label}: {package.subdir}/{package.path.name} ({', '.join(package.depends)})", flush=True)
    noarch = [run.project.name, "torchwheel"] if conda.installed_distribution(run.project.name) else ["torchwheel"]
    if len(noarch) == 1:
        print(f"no noarch package for {run.project.name}: it is not an installed distribution (pip install it)")
    for name in noarch:
        share = conda.prebuilt_share_dir(run.project.name) if name == run.project.name else None
        stage = run.build_dir.path / "conda" / f"noarch-{name}"
        package = conda.write_noarch_package(name, channel=channel, stage=stage, epoch=epoch or 0, pth_to=share)
        print(f"noarch: {package.subdir}/{package.path.name} ({', '.join(package.depends)})", flush=True)
    return 0


def _audit(args: argparse.Namespace) -> int:
    from torchwheel.release.audit import audit_paths, require_torch_version
    from torchwheel.runtime.torch_install import TorchInstall

    if args.python:
        target = TorchInstall.probe(_interpreter(args.python))
    else:
        try:
            target = TorchInstall.running()
        except ImportError as error:
            raise SettingsError(
                f"cannot import torch here ({error}); install it, or pass --python PATH of an env that has it"
            ) from error
    if args.torch_version:
        require_torch_version(target, args.torch_version)
    minimum = (
        TorchInstall.probe(_interpreter(args.min_torch_python, "--min-torch-python")) if args.min_torch_python else None
    )
    report = audit_paths([Path(p) for p in args.paths], target, policy=args.policy, strict=args.strict, minimum=minimum)
    if args.json:
        print(report.to_json(), end="")
    else:
        print(report.format())
    return ExitCode.OK if report.passed else ExitCode.FAULTS_FOUND


def _cache(args: argparse.Namespace) -> int:
    from torchwheel.cli.cache_admin import locations_for, run_cache_command

    return run_cache_command(
        args.action,
        locations_for(args.project),
        older_than=getattr(args, "older_than", None),
        max_size=getattr(args, "max_size", None),
        dry_run=getattr(args, "dry_run", False),
    )


def _doctor(args: argparse.Namespace) -> int:
    from torchwheel.cli.doctor import run_doctor

    return run_doctor(args.project, as_json=args.json)


def _init(args: argparse.Namespace) -> int:
    from torchwheel.cli.init import run_init

    return run_init(Path.cwd())


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="torchwheel", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build a project's specs for the running torch")
    build.add_argument("project", nargs="?", help=_PROJECT_HELP)
    build.add_argument("--out", default="build/torchwheel", help="output dir (default: %(default)s)")
    build.add_argument("--device", choices=("cpu", "cuda", "all"), default="all")
    build.add_argument("--spec", action="append", default=[], help="only specs matching this glob")
    build.add_argument("--arch-list", help="CUDA archs, e.g. '8.0;9.0a' (default: TORCH_CUDA_ARCH_LIST)")
    build.add_argument("--jobs", type=int, help="parallel jobs (default: MAX_JOBS or all cores)")
    build.set_defaults(run=_build)

    matrix = commands.add_parser("matrix", help="the build matrix: cells, CI matrix, workflow")
    matrix.add_argument("action", choices=("list", "ci", "workflow", "extras"))
    matrix.add_argument("--check", action="store_true", help="with extras: exit 1 where pyproject.toml's differ")
    matrix.add_argument("--matrix", help=_MATRIX_HELP)
    matrix.add_argument("--json", action="store_true", help="with list: machine-readable")
    matrix.set_defaults(run=_matrix)

    wheel = commands.add_parser("wheel", help="build the variant wheel of matrix cells")
    wheel.add_argument("--cell", action="append", required=True, help="cell id, e.g. cu130-torch214 (repeatable)")
    wheel.add_argument("--out", default="dist", help="wheel dir (default: %(default)s)")
    wheel.add_argument("--matrix", help=_MATRIX_HELP)
    wheel.add_argument("--project", help=_PROJECT_HELP)
    wheel.add_argument("--python", help="interpreter with the cell's torch (default: a venv per torch version)")
    wheel.add_argument("--envs-dir", help="where per-torch venvs live (default: ~/.cache/torchwheel/envs)")
    wheel.add_argument("--build-dir", help="shared build root (default: build/cells)")
    wheel.add_argument("--jobs", type=int, help="parallel jobs (default: MAX_JOBS or all cores)")
    wheel.add_argument("--policy", help="manylinux policy to audit against (default: the target torch's own)")
    wheel.add_argument("--strict", action="store_true", help="fail where the binaries need more than --policy")
    wheel.set_defaults(run=_wheel)
    conda = commands.add_parser("conda", help="conda packages of matrix cells, or a channel's index")
    conda.add_argument("action", nargs="?", choices=("index",), help="index: write the channel's repodata.json")
    conda.add_argument("channel", nargs="?", help="with index: the channel dir (the --out of a build)")
    conda.add_argument("--cell", action="append", default=[], help="cell id, e.g. cu130 (repeatable)")
    conda.add_argument("--out", default="dist/conda", help="channel dir (default: %(default)s)")
    for option in ("--matrix", "--project", "--python", "--envs-dir", "--policy"):
        conda.add_argument(option, help=f"as for torchwheel wheel {option}")
    conda.add_argument("--jobs", type=int, help="parallel jobs (default: MAX_JOBS or all cores)")
    conda.add_argument("--build-dir", help="shared build root, as for wheel (default: build/cells)")
    conda.add_argument("--strict", action="store_true", help="as for torchwheel wheel --strict")
    conda.set_defaults(run=_conda)
    audit = commands.add_parser("audit", help="check built .so files against a torch and a manylinux policy")
    audit.add_argument("paths", nargs="+", metavar="PATH", help="a .so file, a build/prebuilt dir or a wheel")
    audit.add_argument("--torch-version", help="fail unless the target torch is this major.minor, e.g. 2.13")
    audit.add_argument("--python", help="audit for the torch of this interpreter (default: the running one)")
    audit.add_argument("--policy", help="target manylinux policy (default: the tag of torch's own wheel)")
    audit.add_argument("--strict", action="store_true", help="fail files that need a newer glibc too")
    audit.add_argument("--json", action="store_true", help="print the report as JSON (sorted keys)")
    audit.add_argument(
        "--min-torch-python", help="for stable-ABI files: check their shim calls against this interpreter's torch"
    )
    audit.set_defaults(run=_audit)

    cache = commands.add_parser("cache", help="list or evict JIT cache entries")
    actions = cache.add_subparsers(dest="action", required=True)
    projects = "projects (entry point name or module:attribute; default: every installed one)"
    listing = actions.add_parser("list", help="show each entry: spec, key, size, last use")
    listing.add_argument("project", nargs="*", help=projects)
    prune = actions.add_parser("prune", help="remove entries unused for a while, or the oldest beyond a size")
    prune.add_argument("project", nargs="*", help=projects)
    prune.add_argument("--older-than", metavar="AGE", help="entries unused this long, e.g. 30d, 12h")
    prune.add_argument("--max-size", metavar="SIZE", help="then the least recently used until under, e.g. 2G")
    prune.add_argument("--dry-run", action="store_true", help="say what would go, remove nothing")
    clear = actions.add_parser("clear", help="remove every entry (except those being built)")
    clear.add_argument("project", nargs="*", help=projects)
    cache.set_defaults(run=_cache)

    doctor = commands.add_parser("doctor", help="the environment, and whether each spec loads prebuilt or JIT")
    doctor.add_argument("project", nargs="*", help=projects)
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.set_defaults(run=_doctor)

    init = commands.add_parser(
        "init", help="write [tool.torchwheel] from ./setup.py's extensions, with a default matrix"
    )
    init.set_defaults(run=_init)
    return top


# What `pip install "torchwheel[build]"` adds (packages/torchwheel/pyproject.toml).
_BUILD_EXTRA = frozenset({"elftools", "auditwheel"})


def main(argv: list[str] | None = None) -> int:
    from torchwheel.runtime.package import DEFER_LOADING

    args = parser().parse_args(argv)
    # A command imports a package only to read its specs: its load_package() call must not load.
    DEFER_LOADING.set(True)
    try:
        return int(args.run(args))
    except TorchwheelError as error:
        print(f"torchwheel: error: {error}", file=sys.stderr)
        return int(error.exit_code)
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] not in _BUILD_EXTRA:
            raise
        print(
            f"torchwheel: error: torchwheel {args.command} needs {error.name}, which comes with the build extra; "
            "pip install 'torchwheel[build]'",
            file=sys.stderr,
        )
        return int(ExitCode.ENVIRONMENT)
    except KeyboardInterrupt:
        return 130
