"""Shared fixtures: isolated cache/lock dirs, a tiny real extension project, the torch 2.14.1 env."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from torchwheel.runtime.torch_install import TorchInstall

REPO = Path(__file__).resolve().parents[1]


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
