"""Building specs: write the ninja files, run one `ninja -jN`, report progress and failures."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .arch import CudaArch
from .errors import BuildError, ToolchainError
from .flags import spec_flags
from .ninja_files import library_path, spec_ninja_text, wrapper_ninja_text, write_if_changed
from .spec import JitSpec, check_unique_names
from .target import TorchTarget
from .toolchain import Toolchain

# Called with (steps done, steps in all, what the step was); `ninja` counts only the steps it
# actually has to run, so an up-to-date build reports (0, 0) and nothing else.
Progress = Callable[[int, int, str], None]

_STATUS = re.compile(r"^\[(\d+)/(\d+)\] (.*)$")
_STATUS_FORMAT = "[%f/%t] "


@dataclass(frozen=True)
class BuildResult:
    libraries: dict[str, Path]  # spec name -> built .so
    steps_run: int
    seconds: float


def ninja_executable() -> str:
    try:
        from ninja import BIN_DIR

        candidate = os.path.join(BIN_DIR, "ninja")
        if os.access(candidate, os.X_OK):
            return candidate
    except ImportError:
        pass
    found = shutil.which("ninja")
    if found is None:
        raise ToolchainError("ninja not found; pip install ninja")
    return found


def default_jobs(max_jobs: int | None) -> int:
    if max_jobs:
        return max_jobs
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def write_build_files(
    specs: Sequence[JitSpec],
    target: TorchTarget,
    toolchain: Toolchain,
    archs: tuple[CudaArch, ...],
    build_dir: Path,
) -> Path:
    """Write `<build_dir>/<name>/build.ninja` per spec and the wrapper; return the wrapper."""
    check_unique_names(specs)
    build_dir = build_dir.absolute()
    spec_files = []
    for spec in specs:
        spec_dir = build_dir / spec.name
        flags = spec_flags(spec, target, archs if spec.device == "cuda" else ())
        text = spec_ninja_text(spec, flags, target, toolchain, spec_dir)
        write_if_changed(spec_dir / "build.ninja", text)
        spec_files.append(spec_dir / "build.ninja")
    wrapper = build_dir / "build.ninja"
    write_if_changed(wrapper, wrapper_ninja_text(spec_files))
    return wrapper


def build_specs(
    specs: Sequence[JitSpec],
    target: TorchTarget,
    toolchain: Toolchain,
    archs: tuple[CudaArch, ...],
    build_dir: Path,
    *,
    jobs: int,
    progress: Progress | None = None,
) -> BuildResult:
    """Build every spec with one ninja invocation; outputs land at `<build_dir>/<name>/<name>.so`."""
    build_dir = build_dir.absolute()
    write_build_files(specs, target, toolchain, archs, build_dir)
    started = time.monotonic()
    steps = _run_ninja(build_dir, jobs, progress)
    return BuildResult(
        libraries={s.name: library_path(s, build_dir / s.name) for s in specs},
        steps_run=steps,
        seconds=time.monotonic() - started,
    )


def _run_ninja(build_dir: Path, jobs: int, progress: Progress | None) -> int:
    env = dict(os.environ, NINJA_STATUS=_STATUS_FORMAT)
    process = subprocess.Popen(
        [ninja_executable(), "-C", str(build_dir), "-j", str(jobs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        env=env,
    )
    tail: deque[str] = deque(maxlen=200)
    failed: list[str] = []
    steps = 0
    assert process.stdout is not None
    for line in process.stdout:
        line = line.rstrip("\n")
        tail.append(line)
        if line.startswith("FAILED: "):
            failed.append(line[len("FAILED: ") :].strip())
        elif match := _STATUS.match(line):
            steps = int(match.group(1))
            if progress is not None:
                progress(steps, int(match.group(2)), match.group(3))
    if process.wait() != 0:
        what = ", ".join(_spec_of(build_dir, f) for f in failed) or "the build"
        log = "\n".join(tail)
        raise BuildError(
            f"compiling {what} failed (ninja exit {process.returncode}) in {build_dir}; "
            "the compiler output is above",
            log=log,
        )
    return steps


def _spec_of(build_dir: Path, failed_line: str) -> str:
    """The spec whose step failed: its outputs all live under `<build_dir>/<spec>/`."""
    prefix = f"{build_dir}/"
    start = failed_line.find(prefix)
    if start < 0:
        return failed_line
    return failed_line[start + len(prefix) :].split("/", 1)[0]
