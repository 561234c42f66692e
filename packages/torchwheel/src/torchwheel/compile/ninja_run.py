"""Running a build: write the ninja files, run one `ninja -jN`, report progress and failures."""

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

from torchwheel.compile.build_target import BuildTarget
from torchwheel.compile.children import dying_with_parent
from torchwheel.compile.ninja_files import library_path, spec_ninja_text, wrapper_ninja_text, write_if_changed
from torchwheel.errors import BuildError, ToolchainError
from torchwheel.spec import JitSpec, check_unique_names

# Called with (steps done, steps in all, what the step was); `ninja` counts only the steps it
# actually has to run, so an up-to-date build reports (0, 0) and nothing else.
Progress = Callable[[int, int, str], None]

_STATUS = re.compile(r"^\[(\d+)/(\d+)\] (.*)$")
_STATUS_FORMAT = "[%f/%t] "


@dataclass(frozen=True)
class BuildRun:
    steps_run: int  # the steps ninja had to run: 0 when everything was up to date
    seconds: float


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


@dataclass(frozen=True)
class BuildGroup:
    """Specs built for one target into `<build_dir>/<name>/<name>.so`. One ninja run may build
    several groups (the parts of a matrix cell), so `-j` spans all of them."""

    specs: tuple[JitSpec, ...]
    target: BuildTarget
    build_dir: Path

    def library(self, spec: JitSpec) -> Path:
        return library_path(spec, self.build_dir.absolute() / spec.name)


def write_build_files(groups: Sequence[BuildGroup], wrapper_dir: Path, shared_dir: Path | None = None) -> Path:
    """Write `<build_dir>/<name>/build.ninja` per spec of each group and one wrapper in
    `wrapper_dir` that includes them all; return the wrapper.

    Objects and ninja's log live in `shared_dir` (default: `wrapper_dir`); builds that share it
    one after another (the cells of a matrix) reuse each other's identical objects.
    """
    wrapper_dir = wrapper_dir.absolute()
    shared_dir = (shared_dir or wrapper_dir).absolute()
    spec_files = []
    emitted: set[Path] = set()
    for group in groups:
        check_unique_names(group.specs)
        for spec in group.specs:
            spec_dir = group.build_dir.absolute() / spec.name
            text = spec_ninja_text(spec, group.target, spec_dir, shared_dir / "objs", emitted)
            write_if_changed(spec_dir / "build.ninja", text)
            spec_files.append(spec_dir / "build.ninja")
    wrapper = wrapper_dir / "build.ninja"
    write_if_changed(wrapper, wrapper_ninja_text(spec_files, shared_dir))
    return wrapper


def build_groups(
    groups: Sequence[BuildGroup],
    wrapper_dir: Path,
    *,
    jobs: int,
    progress: Progress | None = None,
    shared_dir: Path | None = None,
) -> BuildRun:
    """Build every group with one ninja invocation (so `-j` is global: docs/architecture.md)."""
    write_build_files(groups, wrapper_dir, shared_dir)
    started = time.monotonic()
    steps = _run_ninja(wrapper_dir.absolute(), jobs, progress)
    return BuildRun(steps_run=steps, seconds=time.monotonic() - started)


def build_specs(
    specs: Sequence[JitSpec],
    target: BuildTarget,
    build_dir: Path,
    *,
    jobs: int,
    progress: Progress | None = None,
    shared_dir: Path | None = None,
) -> BuildResult:
    """Build every spec with one ninja invocation; outputs land at `<build_dir>/<name>/<name>.so`."""
    group = BuildGroup(tuple(specs), target, build_dir)
    run = build_groups([group], build_dir, jobs=jobs, progress=progress, shared_dir=shared_dir)
    return BuildResult({s.name: group.library(s) for s in specs}, run.steps_run, run.seconds)


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
