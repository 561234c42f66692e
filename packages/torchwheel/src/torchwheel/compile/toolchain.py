"""The compilers a build uses, and their identity by reported version, never by path.

A cache key built from a compiler's path breaks twice: the same toolkit reached through a
symlink or another PATH forces a full rebuild (FlashInfer #4884), and a different toolkit at
the same path silently reuses stale binaries (torch #68905). So the identity is what the
compiler says about itself, asked once per process.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from torchwheel.compile.nvcc_archs import ToolkitArchs
from torchwheel.errors import ToolchainError
from torchwheel.settings import CompilerLauncher


@dataclass(frozen=True)
class Compiler:
    path: str
    version: str  # the compiler's own words, with its invoked name removed


# Every link reads the symbol tables of torch's libraries (libtorch_cpu and libtorch_cuda are 450
# and 500 MB): GNU ld took 1.7-1.9 s a CUDA spec's link here, gold 0.8 s, and a cell has a link
# per spec that no compiler cache serves (docs/benchmarks.md). So a build links with the first of
# these that the compiler links with (`-fuse-ld=NAME`), fastest first, else with its default.
# Like the compiler launcher, the linker is how a binary is made, not what it is: it is in the
# ninja files (ninja_files.py), not in the flags or the cache key, and a cache hit never probes.
FAST_LINKERS = ("mold", "lld", "gold")
_LINKER_PROBE_TIMEOUT_S = 10.0  # an empty library links in a tenth of a second


@dataclass(frozen=True)
class Toolchain:
    cxx: Compiler
    nvcc: Compiler | None = None
    cuda_home: Path | None = None
    cuda_version: str | None = None  # "13.0"
    launcher: str | None = None  # a compiler cache's path (sccache, ccache), put before each compile

    def identity(self) -> dict[str, str | None]:
        # No launcher here: a compiler cache hands back the bytes the compiler would write, so it
        # is not part of what the binary is (keys.py says why it stays out of the key).
        return {
            "cxx": self.cxx.version,
            "nvcc": self.nvcc.version if self.nvcc else None,
        }

    def cuda_archs(self) -> ToolkitArchs | None:
        """What this toolkit's nvcc can compile for; None where nvcc cannot say (nvcc < 11)."""
        if self.nvcc is None or self.cuda_version is None:
            return None
        listing = listed_archs(self.nvcc.path)
        return ToolkitArchs.from_listing(self.cuda_version, listing, self.nvcc.path) if listing else None


def find_toolchain(
    cxx: str, cuda_home: Path | None, *, need_cuda: bool, launcher: CompilerLauncher | None = None
) -> Toolchain:
    """The compilers of a build. `launcher` (settings' `compiler_launcher`) is resolved here, when
    a build is being planned, so a missing one stops it in one line before anything is written."""
    compiler = _compiler(cxx, "CXX")
    launcher_path = launcher.resolve() if launcher is not None else None
    if not need_cuda:
        return Toolchain(cxx=compiler, launcher=launcher_path)
    home = cuda_home or _default_cuda_home()
    if home is None or not (home / "bin" / "nvcc").is_file():
        where = f"CUDA_HOME={home}" if home else "no CUDA_HOME and no nvcc on PATH"
        raise ToolchainError(f"no CUDA toolkit found ({where}); set CUDA_HOME to a toolkit that has bin/nvcc")
    nvcc = _compiler(str(home / "bin" / "nvcc"), "CUDA_HOME")
    match = re.search(r"release (\d+\.\d+)", nvcc.version)
    return Toolchain(compiler, nvcc, home, match.group(1) if match else None, launcher_path)


def _default_cuda_home() -> Path | None:
    # The nvcc on PATH may be a wrapper script (here: /usr/local/bin/nvcc execs the real one),
    # so its directory counts only when it is a toolkit, with the runtime's headers beside it.
    candidates = []
    if nvcc := shutil.which("nvcc"):
        candidates.append(Path(nvcc).resolve().parent.parent)
    candidates.append(Path("/usr/local/cuda"))
    for home in candidates:
        if (home / "bin" / "nvcc").is_file() and (home / "include" / "cuda_runtime.h").is_file():
            return home
    return None


def _compiler(executable: str, variable: str) -> Compiler:
    path = shutil.which(executable)
    if path is None:
        raise ToolchainError(f"compiler {executable!r} not found; install it or set {variable} to one that exists")
    return Compiler(path, reported_version(path))


@functools.cache
def reported_version(path: str) -> str:
    """`--version` output, stripped of the invoked name (`g++` and `c++` are one compiler)."""
    try:
        result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ToolchainError(f"cannot run {path} --version ({error}); check the compiler") from error
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if result.returncode != 0 or not lines:
        raise ToolchainError(f"{path} --version failed; check that it is a working compiler")
    if "nvcc" in os.path.basename(path):
        # Its first lines are a copyright banner; the release and build lines identify it.
        return " ".join(line for line in lines if line.startswith(("Cuda", "Build")))
    first = lines[0]
    for name in {os.path.basename(path), os.path.basename(os.path.realpath(path))}:
        if first.startswith(name + " "):
            first = first[len(name) :].strip()
    return first


@functools.cache
def fast_linker(cxx: str) -> str | None:
    """The first of FAST_LINKERS (as `-fuse-ld=` names it) on the compiler's search path with
    which it links a C++ shared library, asked once per process. A real link, not
    `-Wl,--version`: a gcc built into its own prefix ran gold's `--version` and then could not link
    with it (its libstdc++ is where only GNU ld looks: the GPU machine's, docs/benchmarks.md)."""
    with tempfile.TemporaryDirectory(prefix="torchwheel-linker-") as scratch:
        for name in FAST_LINKERS:
            if shutil.which(f"ld.{name}") is None:
                continue
            library = os.path.join(scratch, f"{name}.so")
            status = _probe([cxx, f"-fuse-ld={name}", "-shared", "-x", "c++", os.devnull, "-o", library])
            if status is None:
                return None  # a driver that hangs on one linker hangs on the next: its default it is
            if status == 0:
                return name
    return None


def _probe(command: list[str]) -> int | None:
    """The exit status of `command`, or None if it ran past _LINKER_PROBE_TIMEOUT_S. It runs in
    its own session, so that a driver that hangs is ended with whatever it started."""
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return -1
    try:
        return process.wait(timeout=_LINKER_PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return None


@functools.cache
def listed_archs(nvcc: str) -> tuple[str, ...]:
    """`nvcc --list-gpu-arch`: the archs this toolkit compiles for, asked once per process."""
    try:
        result = subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    if result.returncode != 0:
        return ()  # too old to list them; nvcc itself will refuse an arch it lacks
    return tuple(line.strip() for line in result.stdout.splitlines() if line.strip())
