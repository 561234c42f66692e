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
from pathlib import Path

import pytest

from torchwheel.runtime.torch_install import TorchInstall

REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with slow tests first, each file's tests kept together and in order.

    `nox -s tests` spreads files over two workers (pytest-xdist, --dist loadfile); a long file
    that starts last would run alone at the end while the other core idles."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


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


@pytest.fixture(scope="session")
def minfer_cuda_build(torch214_python: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """minfer's 15 CUDA specs built for sm_90a by `torchwheel build` under torch 2.14.1 (CUDA
    13.0), as a user runs it, once per test run; returns the --out dir. Shared by the CUDA build
    and audit tests: the slowest compile of the CPU-machine suite is made once."""
    with built_once(tmp_path_factory, "minfer-cuda") as out:
        if out is not None:
            env = build_env(out, CUDA_HOME=os.environ.get("CUDA_HOME", "/usr/local/cuda"))
            command = [torch214_python, "-m", "torchwheel", "build", "minfer", "--device", "cuda"]
            command += ["--arch-list", "9.0a", "--out", str(out)]
            result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3000)
            assert result.returncode == 0, result.stdout + result.stderr
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
