"""The `torchwheel` command line."""

from __future__ import annotations

import argparse
import fnmatch
import sys
from pathlib import Path

from .errors import BuildError, SettingsError, TorchwheelError


def _build(args: argparse.Namespace) -> int:
    from .aot import publish_aot
    from .arch import format_arch_list, parse_arch_list
    from .build import build_specs, default_jobs
    from .project import load_project
    from .settings import Settings
    from .target import TorchTarget
    from .toolchain import find_toolchain

    project = load_project(args.project)
    specs = [s for s in project.make_specs() if args.device == "all" or s.device == args.device]
    if args.spec:
        specs = [s for s in specs if any(fnmatch.fnmatchcase(s.name, p) for p in args.spec)]
    if not specs:
        raise SettingsError(
            f"no {args.device} spec of {project.name} matches {' '.join(args.spec) or 'anything'}; "
            "check --device and --spec"
        )
    settings = Settings.from_env(project.name, project.env_prefix)
    need_cuda = any(s.device == "cuda" for s in specs)
    archs = ()
    if need_cuda:
        text = args.arch_list or settings.arch_list
        if not text:
            raise SettingsError(
                "no CUDA arch list for the cuda specs; pass --arch-list (e.g. '8.0;9.0a') or set "
                "TORCH_CUDA_ARCH_LIST"
            )
        archs = parse_arch_list(text)
    target = TorchTarget.running()
    toolchain = find_toolchain(settings.cxx, settings.cuda_home, need_cuda=need_cuda)
    jobs = args.jobs or default_jobs(settings.max_jobs)
    out = Path(args.out).absolute()
    print(
        f"building {len(specs)} specs of {project.name} for torch {target.version}"
        + (f", CUDA {toolchain.cuda_version}, archs {format_arch_list(archs)}" if need_cuda else "")
        + f" with ninja -j{jobs}",
        flush=True,
    )

    def progress(done: int, total: int, what: str) -> None:
        print(f"[{done:>{len(str(total))}}/{total}] {what}", flush=True)

    try:
        result = build_specs(specs, target, toolchain, archs, out / "build", jobs=jobs, progress=progress)
    except BuildError as error:
        print(error.log, file=sys.stderr)
        raise
    entries = publish_aot(project.name, specs, result, target, toolchain, archs, out / "data" / "aot")
    for entry in entries:
        size = (out / "data" / "aot" / entry.file).stat().st_size
        print(f"  {entry.name:<32} {entry.device:<5} {size / 1024:8.0f} KiB  sha256 {entry.sha256[:12]}")
    print(
        f"built {len(entries)} specs ({result.steps_run} build steps) in {result.seconds:.1f} s; "
        f"prebuilt dir: {out / 'data' / 'aot'} (use it with {project.env_prefix}_AOT_PATH)"
    )
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="torchwheel", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build a project's specs for the running torch")
    build.add_argument("project", help="installed project name (entry point) or module:attribute")
    build.add_argument("--out", default="build/torchwheel", help="output dir (default: %(default)s)")
    build.add_argument("--device", choices=("cpu", "cuda", "all"), default="all")
    build.add_argument("--spec", action="append", default=[], help="only specs matching this glob")
    build.add_argument("--arch-list", help="CUDA archs, e.g. '8.0;9.0a' (default: TORCH_CUDA_ARCH_LIST)")
    build.add_argument("--jobs", type=int, help="parallel jobs (default: MAX_JOBS or all cores)")
    build.set_defaults(run=_build)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except TorchwheelError as error:
        print(f"torchwheel: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
