"""Shared fixtures: isolated cache/lock dirs, a tiny real extension project, the torch 2.14.1 env."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from torchwheel.runtime.torch_install import TorchInstall

REPO = Path(__file__).resolve().parents[1]


# The longest files, longest first: the two workers take files in this order (`--dist loadfile
# --no-loadscope-reorder`, noxfile.py), so that no long file starts last and runs alone while the
# other core idles. The files that read the clones test_variant_wheels builds (`minfer_clones`:
# conda, audit, cuda_build) come after files that keep the other worker busy meanwhile. Files not
# named follow, those with `slow` tests first.
LONGEST_FIRST = (
    "test_variant_wheels.py",
    "test_adopt.py",
    "test_trust.py",
    "test_workflow.py",
    "test_jit.py",
    "test_minfer_ops.py",
    "test_conda.py",
    "test_audit.py",
    "test_cuda_build.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files in the order of LONGEST_FIRST, then those with slow tests, then the rest; each file's
    tests kept together and in order."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> tuple[int, bool]:
        name = item.path.name
        return (LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST), item.path not in slow_files)

    items.sort(key=rank)


@pytest.fixture
def private_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Cache and lock dirs of this test alone, and no stray settings from the caller's shell."""
    for name in list(os.environ):
        if name.startswith(("MINFER_", "TORCHWHEEL_", "TINY_")) and not name.startswith("TORCHWHEEL_TEST_"):
            monkeypatch.delenv(name)
    values = {
        "TORCHWHEEL_CACHE_DIR": str(tmp_path / "cache"),
        "TORCHWHEEL_LOCK_DIR": str(tmp_path / "locks"),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return dict(os.environ)


TINY_KERNEL = """\
#include "tiny/scale.h"
void tiny_scale(float* data, long n) { for (long i = 0; i < n; ++i) data[i] *= TINY_FACTOR; }
"""
TINY_HEADER = """\
#pragma once
#ifndef TINY_FACTOR
#define TINY_FACTOR 2.0f
#endif
void tiny_scale(float* data, long n);
"""
TINY_BINDING = """\
#include <ATen/core/Tensor.h>
#include <torch/library.h>
#include "tiny/scale.h"
static void scale_(at::Tensor& x) { tiny_scale(x.data_ptr<float>(), x.numel()); }
TORCH_LIBRARY_FRAGMENT(tiny, m) {
  m.def("NAME(Tensor(a!) x) -> ()");
  m.impl("NAME", c10::DispatchKey::CPU, &scale_);
}
"""
TINY_PROJECT = """\
from pathlib import Path
from torchwheel import JitSpec, Project

ROOT = Path(__file__).parent / "src"
FLAGS = tuple(filter(None, __import__("os").environ.get("TINY_EXTRA_CFLAGS", "").split()))


def make_specs():
    return [
        JitSpec(
            name=name,
            sources=[ROOT / "kernel.cpp"],
            torch_sources=[ROOT / f"{name}.cpp"],
            include_dirs=[ROOT / "include"],
            extra_cflags=FLAGS,
            root=ROOT,
        )
        for name in ("scale_a", "scale_b")
    ]


PROJECT = Project("tiny", "TINY", make_specs)
"""


@pytest.fixture
def tiny_project(tmp_path: Path) -> Path:
    """A real two-spec extension project in a directory whose name holds '$' and a space.

    Returns the directory to put on PYTHONPATH; the project is `tiny_project:PROJECT`.
    """
    return write_tiny_project(tmp_path / "pro$ject dir")


def write_tiny_project(root: Path) -> Path:
    """Write the tiny project into `root` (for fixtures of a wider scope); return `root`."""
    (root / "src" / "include" / "tiny").mkdir(parents=True)
    (root / "src" / "kernel.cpp").write_text(TINY_KERNEL)
    (root / "src" / "include" / "tiny" / "scale.h").write_text(TINY_HEADER)
    for name in ("scale_a", "scale_b"):
        (root / "src" / f"{name}.cpp").write_text(TINY_BINDING.replace("NAME", name))
    (root / "tiny_project.py").write_text(TINY_PROJECT)
    return root


def isolated_env(tmp: Path, project: Path | None = None) -> dict[str, str]:
    """os.environ without torchwheel settings, with cache and lock dirs under `tmp` and the
    tiny project (if given) importable: for fixtures wider than a test, where monkeypatch is not."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINFER_", "TORCHWHEEL_", "TINY_"))}
    env.update(TORCHWHEEL_CACHE_DIR=str(tmp / "cache"), TORCHWHEEL_LOCK_DIR=str(tmp / "locks"))
    if project is not None:
        env["PYTHONPATH"] = str(project)
    return env


def build_env(tmp: Path, **extra: str) -> dict[str, str]:
    """isolated_env without CUDA_* either, plus `extra`: a build that finds its toolkit only as a
    test says (CUDA_HOME given, or the default /usr/local/cuda)."""
    env = {k: v for k, v in isolated_env(tmp).items() if not k.startswith("CUDA_")}
    env.update(extra)
    return env


def run_python(
    code: str, env: dict[str, str], cwd: Path | None = None, python: str | None = None
) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter (a real second process); fail the test with its output."""
    result = subprocess.run(
        [python or sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if result.returncode != 0:
        pytest.fail(f"subprocess failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def torch214_python() -> str:
    python = os.environ.get("TORCHWHEEL_TEST_TORCH214_PYTHON")
    if not python:
        pytest.skip("no torch 2.14.1 environment: run through `nox -s tests`, which makes one")
    if not shutil.which("nvcc") and not Path("/usr/local/cuda/bin/nvcc").exists():
        pytest.skip("no nvcc: CUDA builds need a CUDA toolkit")
    return python


@contextlib.contextmanager
def built_once(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Path | None]:
    """A directory of this test run that one process builds and every pytest-xdist worker reads.

    Yields the empty dir to build into, or None when another worker built it already; the build
    holds an flock, so a worker that asks meanwhile waits for it instead of building it again."""
    root = base_of(tmp_path_factory)
    out, done = root / name, root / f"{name}.done"
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            yield None
        else:
            shutil.rmtree(out, ignore_errors=True)  # a worker that failed half-way
            out.mkdir()
            yield out
            done.touch()


TORCH214 = os.environ.get("TORCHWHEEL_TEST_TORCH214_PYTHON")
HAS_NVCC = Path("/usr/local/cuda/bin/nvcc").exists() or bool(os.environ.get("CUDA_HOME"))
CONDA_EPOCH = "1700000000"  # SOURCE_DATE_EPOCH of the clones' conda packages


def run_ok(*command: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run a command; fail with its output unless it exits 0; return its stdout."""
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, env=env, cwd=cwd)
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without minfer's settings or a cache or lock dir of the caller's, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINFER_", "TORCHWHEEL_CACHE", "TORCHWHEEL_LOCK"))}
    env.update(extra)
    return env


def narrowed_matrix(checkout: Path, max_mb: float) -> Path:
    """The checkout's matrix with cu130's seven archs narrowed to two families, and this size limit.

    Each arch is one more nvcc pass over all 15 CUDA units: two families keep what the tests see
    (a cell of several archs, split per family) at a third of the build time on CI's 2 cores."""
    text = (checkout / "ci" / "matrix.toml").read_text()
    full = 'arch_list = "7.5;8.0;8.6;8.9;9.0;10.0;12.0+PTX" # CUDA 13'
    assert full in text and "max_wheel_mb = 100" in text, "ci/matrix.toml changed: update narrowed_matrix"
    text = text.replace("max_wheel_mb = 100", f"max_wheel_mb = {max_mb!r}").replace(full, 'arch_list = "8.0;9.0a" #')
    path = checkout / "ci" / f"matrix-{max_mb}.toml"
    path.write_text(text)
    return path


@dataclass(frozen=True)
class MinferClone:
    """A git clone of this repository at one commit, at a path of its own, and what `torchwheel`
    from the clone's own sources builds there against torch 2.14.1, in one build dir: each cell's
    variant wheel (`torchwheel wheel`: cpu, then cu130 where nvcc is; the matrix narrowed), then
    each cell's `.conda` (`torchwheel conda`, which packages the audited wheel bytes of the same
    build dir), all into one channel. Everything is read back from disk, so each pytest-xdist
    worker sees the same clone."""

    path: Path

    @property
    def cells(self) -> tuple[str, ...]:
        return ("cpu", "cu130") if HAS_NVCC else ("cpu",)

    @property
    def matrix(self) -> Path:
        """ci/matrix.toml narrowed (narrowed_matrix), with its 100 MB limit."""
        return self.path / "ci" / "matrix-100.toml"

    @property
    def build_dir(self) -> Path:
        return self.path / "build" / "cells"

    @property
    def channel(self) -> Path:
        return self.path / "conda"

    @property
    def wheels(self) -> dict[str, Path]:
        """Each cell's variant wheel, as `torchwheel wheel` wrote it."""
        return {cell: self.wheel(cell) for cell in self.cells}

    def wheel(self, cell: str) -> Path:
        (wheel,) = (self.path / "dist" / cell).glob("*.whl")
        return wheel

    @property
    def split_limit_mb(self) -> float:
        """One byte under the cu130 wheel: the size limit of the split build."""
        return (self.wheel("cu130").stat().st_size - 1) / 1e6

    @property
    def split_wheels(self) -> list[Path]:
        """The cu130 cell built again under split_limit_mb (first clone only): its wheel and the
        wheel of each arch family."""
        return sorted((self.path / "dist" / "split").glob("*.whl"))

    def ninja_log(self, step: str) -> list[str]:
        """The build dir's .ninja_log after a step: `wheel-<cell>` or `conda-<cell>`."""
        return (self.path / "logs" / f"{step}.ninja_log").read_text().splitlines()

    def output(self, step: str) -> str:
        """What a step printed: `wheel-<cell>` or `conda-<cell>`."""
        return (self.path / "logs" / f"{step}.out").read_text()

    def env(self, **extra: str) -> dict[str, str]:
        """The clone's own torchwheel and minfer first on the path, a cache dir of its own."""
        packages = self.path / "packages"
        source = f"{packages / 'torchwheel' / 'src'}{os.pathsep}{packages / 'minfer' / 'src'}"
        return clean_env(PYTHONPATH=source, TORCHWHEEL_CACHE_DIR=str(self.path / "cache"), **extra)

    def torchwheel(self, command: str, cell: str, out: Path, matrix: Path | None = None, **env: str) -> str:
        """`torchwheel wheel|conda --cell CELL` with torch 2.14.1, in the clone's build dir."""
        assert TORCH214
        return run_ok(
            sys.executable, "-m", "torchwheel", command, "--cell", cell, "--python", TORCH214,
            "--project", "minfer", "--matrix", matrix or self.matrix,
            "--build-dir", self.build_dir, "--out", out, env=self.env(**env), cwd=self.path,
        )  # fmt: skip

    def build(self, commit: str, split: bool) -> MinferClone:
        """Clone, then build the wheels, the conda packages and, where `split`, the split cell
        (last: it publishes the cu130 part anew, with only the CPU specs)."""
        run_ok("git", "clone", "-q", REPO, self.path)
        run_ok("git", "-C", self.path, "checkout", "-q", commit)
        assert narrowed_matrix(self.path, 100) == self.matrix
        (self.path / "logs").mkdir()
        for cell in self.cells:
            self._step("wheel", cell, self.path / "dist" / cell)
        for cell in self.cells:
            self._step("conda", cell, self.channel, SOURCE_DATE_EPOCH=CONDA_EPOCH)
        if split and "cu130" in self.cells:
            matrix = narrowed_matrix(self.path, self.split_limit_mb)
            self._step("wheel", "cu130", self.path / "dist" / "split", matrix=matrix, log="split-cu130")
        return self

    def _step(self, command: str, cell: str, out: Path, matrix: Path | None = None, log: str = "", **env: str) -> None:
        output = self.torchwheel(command, cell, out, matrix, **env)
        log = log or f"{command}-{cell}"
        (self.path / "logs" / f"{log}.out").write_text(output)
        shutil.copy(self.build_dir / ".ninja_log", self.path / "logs" / f"{log}.ninja_log")


@pytest.fixture(scope="session")
def minfer_clones(tmp_path_factory: pytest.TempPathFactory) -> tuple[MinferClone, MinferClone]:
    """Two clones of this repository's HEAD (one commit, whatever lands meanwhile) at two paths,
    each built as MinferClone.build says, once per test run, for the variant-wheel, conda, CUDA
    build and audit tests; the first also builds its cu130 cell split per arch family. The two
    clones build side by side (each in its own build dir): one's steps that keep a single core
    busy (imports, the audit, packing) overlap the other's compiles."""
    if not TORCH214:
        pytest.skip("no torch 2.14.1 environment: run through `nox -s tests`, which makes one")
    with built_once(tmp_path_factory, "minfer-clones") as out:
        root = base_of(tmp_path_factory) / "minfer-clones"
        clones = (MinferClone(root / "one" / "minfer-src"), MinferClone(root / "two" / "a" / "different" / "checkout"))
        if out is not None:
            commit = run_ok("git", "-C", REPO, "rev-parse", "HEAD").strip()
            with ThreadPoolExecutor(2) as pool:
                for build in [pool.submit(clone.build, commit, clone is clones[0]) for clone in clones]:
                    build.result()
    return clones


@pytest.fixture(scope="session")
def minfer_cuda_build(
    torch214_python: str, minfer_clones: tuple[MinferClone, MinferClone], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """minfer's 15 CUDA specs built for sm_90a under torch 2.14.1 (CUDA 13.0), audited, as the
    --out dir of `torchwheel build` lays them out (data/aot/): the sm9x part of the first clone's
    cu130 cell, split per arch family (MinferClone.build), which the variant-wheel tests make
    anyway. Shared by the CUDA build and audit tests: no CUDA spec is compiled for them alone."""
    with built_once(tmp_path_factory, "minfer-cuda") as out:
        if out is not None:
            shutil.copytree(minfer_clones[0].build_dir / "cu130-sm9x" / "aot", out / "data" / "aot")
    return base_of(tmp_path_factory) / "minfer-cuda"


def base_of(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This test run's temp dir: under pytest-xdist, the parent of the workers' own dirs."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def tree_state(root: Path) -> dict[str, tuple[int, int, int, int]]:
    """Every path under `root` with its mode, owner, size and mtime: equal states, no change."""
    state = {}
    for directory, names, files in os.walk(root):
        for name in names + files:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            state[os.path.relpath(path, root)] = (info.st_mode, info.st_uid, info.st_size, info.st_mtime_ns)
    return state


def torch_at(version: str, cuda: str | None, cxx11_abi: bool = True) -> TorchInstall:
    """A torch of this version and CUDA, as selection sees it (for tests of the choice alone)."""
    return TorchInstall(version, cxx11_abi, cuda, Path("/nonexistent/torch"))
