"""Running a build: write the ninja files, run one `ninja -jN`, report progress and failures."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shlex
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from torchwheel.compile.build_target import BuildTarget
from torchwheel.compile.children import dying_with_parent
from torchwheel.compile.ninja_files import library_path, spec_ninja_text, wrapper_ninja_text, write_if_changed
from torchwheel.errors import BuildError, ToolchainError
from torchwheel.settings import DEFAULT_BUILD_TIMEOUT_S
from torchwheel.spec import CUDA_SUFFIXES, JitSpec, check_unique_names

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
    spec_files: list[tuple[tuple[int, int], Path]] = []
    emitted: set[Path] = set()
    for group in groups:
        check_unique_names(group.specs)
        for spec in group.specs:
            spec_dir = group.build_dir.absolute() / spec.name
            text = spec_ninja_text(spec, group.target, spec_dir, shared_dir / "objs", emitted)
            write_if_changed(spec_dir / "build.ninja", text)
            spec_files.append((_compile_weight(spec), spec_dir / "build.ninja"))
    # ninja starts ready steps of equal depth (every compile is one step from its link) in the
    # order it read them, so the specs likely to compile longest go first: last in the file, a
    # fresh build's slowest unit started in the second wave on 16 cores and was the build's whole
    # tail (docs/benchmarks.md). The sort is stable: equal weights keep the project's order.
    spec_files.sort(key=lambda weighed: weighed[0], reverse=True)
    wrapper = wrapper_dir / "build.ninja"
    write_if_changed(wrapper, wrapper_ninja_text([path for _, path in spec_files], shared_dir))
    return wrapper


def _compile_weight(spec: JitSpec) -> tuple[int, int]:
    """A guess at how long a spec's units take to compile, for ordering only: CUDA units (a host
    and a device compile each) before C++ ones, then more source bytes before fewer."""
    cuda = sum(source.suffix in CUDA_SUFFIXES for source in spec.all_sources)
    size = 0
    for source in spec.all_sources:
        with contextlib.suppress(OSError):  # ninja names a missing source when it gets there
            size += source.stat().st_size
    return cuda, size


def build_groups(
    groups: Sequence[BuildGroup],
    wrapper_dir: Path,
    *,
    jobs: int,
    progress: Progress | None = None,
    shared_dir: Path | None = None,
    watch: BuildWatch | None = None,
) -> BuildRun:
    """Build every group with one ninja invocation (so `-j` is global: docs/architecture.md)."""
    write_build_files(groups, wrapper_dir, shared_dir)
    started = time.monotonic()
    steps = _run_ninja(wrapper_dir.absolute(), jobs, progress, watch or BuildWatch())
    return BuildRun(steps_run=steps, seconds=time.monotonic() - started)


def build_specs(
    specs: Sequence[JitSpec],
    target: BuildTarget,
    build_dir: Path,
    *,
    jobs: int,
    progress: Progress | None = None,
    shared_dir: Path | None = None,
    watch: BuildWatch | None = None,
) -> BuildResult:
    """Build every spec with one ninja invocation; outputs land at `<build_dir>/<name>/<name>.so`."""
    group = BuildGroup(tuple(specs), target, build_dir)
    run = build_groups([group], build_dir, jobs=jobs, progress=progress, shared_dir=shared_dir, watch=watch)
    return BuildResult({s.name: group.library(s) for s in specs}, run.steps_run, run.seconds)


@dataclass(frozen=True)
class BuildWatch:
    """How a running build is watched: a line at least every `heartbeat_every_s` while steps
    run (naming the units being compiled), and no step allowed to run past `step_timeout_s`."""

    step_timeout_s: float = DEFAULT_BUILD_TIMEOUT_S
    heartbeat: Callable[[str], None] | None = None
    heartbeat_every_s: float = 30.0
    timeout_variable: str = "TORCHWHEEL_BUILD_TIMEOUT"  # named in the timeout's message


@dataclass
class _NinjaOutput:
    """What ninja has printed so far, read by a thread so that the caller can watch the clock."""

    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)


def _run_ninja(build_dir: Path, jobs: int, progress: Progress | None, watch: BuildWatch) -> int:
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
    assert process.stdout is not None
    output = _NinjaOutput()
    threading.Thread(target=output.read, args=(process.stdout,), daemon=True).start()
    tail: deque[str] = deque(maxlen=5000)  # ninja's own output: the compilers' errors
    failed: list[str] = []
    steps = 0
    last_step = ""
    step_started = last_beat = time.monotonic()
    while True:
        try:
            line = output.lines.get(timeout=1.0)
        except queue.Empty:
            now = time.monotonic()
            if now - step_started > watch.step_timeout_s:
                units = _running_units(process.pid) or "compiling"
                _stop(process)
                _keep_log(build_dir, tail)
                raise BuildError(
                    f"a build step ran over {watch.timeout_variable}={watch.step_timeout_s:g} s ({units}) and "
                    f"was stopped; build dir {build_dir}; check the compiler, or raise {watch.timeout_variable}",
                    log="\n".join(tail),
                ) from None
            if watch.heartbeat is not None and now - last_beat >= watch.heartbeat_every_s:
                watch.heartbeat(f"still compiling {_running_units(process.pid) or '...'} ({now - step_started:.0f} s)")
                last_beat = now
            continue
        if line is None:
            break
        tail.append(line)
        if line.startswith("FAILED: "):
            # Piped, ninja prints a step's status line as it ends, right before its FAILED
            # line; our descriptions start with the spec's name.
            failed.append(last_step.split(":", 1)[0] or line)
        elif match := _STATUS.match(line):
            steps = int(match.group(1))
            last_step = match.group(3)
            step_started = time.monotonic()
            if progress is not None:
                progress(steps, int(match.group(2)), match.group(3))
    if process.wait() != 0:
        _keep_log(build_dir, tail)
        raise BuildError(_failure_line(failed, process.returncode, build_dir, tail), log="\n".join(tail))
    return steps


def _failure_line(failed: list[str], code: int, build_dir: Path, tail: deque[str]) -> str:
    """One line: which specs failed, the compiler's first error lines, where the build is."""
    what = ", ".join(dict.fromkeys(failed)) or "the build"
    errors = [line.strip() for line in tail if re.search(r"\berror\b", line, re.IGNORECASE)][:3]
    first = f"; first errors: {' | '.join(errors)}" if errors else ""
    if any("Python.h" in line for line in errors):
        # The usual PyInit__C stub of a setup.py extension: torch.ops.load_library loads ours instead.
        first += (
            "; torchwheel loads the library with torch.ops.load_library, not as a Python module: "
            "drop Python.h and the PyInit_ stub, and register the ops with TORCH_LIBRARY"
        )
    if any("TORCH_TARGET_VERSION" in line for line in errors):
        first += (
            "; a stable-ABI spec's units may include only torch/csrc/stable, torch/headeronly and the C shim: "
            'the header named above is not one of them (or make the spec torch_abi = "full")'
        )
    return (
        f"compiling {what} failed (ninja exit {code}){first}; build dir {build_dir} (full log: {build_dir}/build.log)"
    )


def _keep_log(build_dir: Path, tail: deque[str]) -> None:
    with contextlib.suppress(OSError):  # the message still carries the first errors
        (build_dir / "build.log").write_text("\n".join(tail) + "\n")


def _stop(process: subprocess.Popen[str]) -> None:
    """End ninja: on SIGTERM it kills every running job's process group, then exits."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _running_units(ninja_pid: int) -> str:
    """The sources ninja's jobs are compiling now, from their command lines (Linux /proc)."""
    units = []
    for child in _children(ninja_pid):
        try:
            words = shlex.split(Path(f"/proc/{child}/cmdline").read_text().replace("\0", " "))
        except (OSError, ValueError):
            continue
        sources = [
            words[i + 1] for i, word in enumerate(words[:-1]) if word == "-c" and not words[i + 1].startswith("$")
        ]
        units += [Path(src).name for src in sources[-1:] if "." in Path(src).name]
    return ", ".join(sorted(units))


def _children(pid: int) -> list[int]:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        return [int(c) for t in tasks for c in Path(f"/proc/{pid}/task/{t}/children").read_text().split()]
    except (OSError, ValueError):
        return []
