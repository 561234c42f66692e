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
from .children import dying_with_parent
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
    shared_dir: Path | None = None,
) -> Path:
    """Write `<build_dir>/<name>/build.ninja` per spec and the wrapper; return the wrapper.

    Objects and ninja's log live in `shared_dir` (default: `build_dir`); builds that share it
    one after another (the cells of a matrix) reuse each other's identical objects.
    """
    check_unique_names(specs)
    build_dir = build_dir.absolute()
    shared_dir = (shared_dir or build_dir).absolute()
    spec_files = []
    emitted: set[Path] = set()
    for spec in specs:
        spec_dir = build_dir / spec.name
        flags = spec_flags(spec, target, archs if spec.device == "cuda" else ())
        text = spec_ninja_text(spec, flags, target, toolchain, spec_dir, shared_dir / "objs", emitted)
        write_if_changed(spec_dir / "build.ninja", text)
        spec_files.append(spec_dir / "build.ninja")
    wrapper = build_dir / "build.ninja"
    write_if_changed(wrapper, wrapper_ninja_text(spec_files, shared_dir))
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
    shared_dir: Path | None = None,
) -> BuildResult:
    """Build every spec with one ninja invocation; outputs land at `<build_dir>/<name>/<name>.so`."""
    build_dir = build_dir.absolute()
    write_build_files(specs, target, toolchain, archs, build_dir, shared_dir)
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
        # Wrapped so that ninja (and through it every compiler) dies with a killed builder.
        dying_with_parent([ninja_executable(), "-C", str(build_dir), "-j", str(jobs)]),
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
    last_step = ""
    assert process.stdout is not None
    for line in process.stdout:
        line = line.rstrip("\n")
        tail.append(line)
        if line.startswith("FAILED: "):
            # Piped, ninja prints a step's status line as it ends, right before its FAILED
            # line; our descriptions start with the spec's name.
            failed.append(last_step.split(":", 1)[0] or line)
        elif match := _STATUS.match(line):
            steps = int(match.group(1))
            last_step = match.group(3)
            if progress is not None:
                progress(steps, int(match.group(2)), match.group(3))
    if process.wait() != 0:
        what = ", ".join(dict.fromkeys(failed)) or "the build"
        log = "\n".join(tail)
        raise BuildError(
            f"compiling {what} failed (ninja exit {process.returncode}) in {build_dir}; the compiler output is above",
            log=log,
        )
    return steps
