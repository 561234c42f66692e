"""Variant wheels through the standard tools: `python -m build` (torchwheel's PEP 517 backend)
gives the same bytes as `torchwheel wheel`, and cibuildwheel accepts the configuration."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

VARIANT = REPO / "packages" / "minfer-variant"


def run(*command: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, env=env, cwd=cwd)
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_cibuildwheel_accepts_the_configuration() -> None:
    pytest.importorskip("cibuildwheel", reason="cibuildwheel is installed by `nox -s tests`")
    output = run(sys.executable, "-m", "cibuildwheel", "--print-build-identifiers", "--platform", "linux", VARIANT)
    assert output.split() == ["cp311-manylinux_x86_64"]


def test_the_backend_without_a_cell_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("build", reason="pypa/build is installed by `nox -s tests`")
    env = {k: v for k, v in os.environ.items() if k != "TORCHWHEEL_CELL"}
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", str(tmp_path), str(VARIANT)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert result.returncode != 0
    assert "no cell to build; pass -C cell=<id> (e.g. cu130) or set TORCHWHEEL_CELL" in result.stdout + result.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_python_m_build_makes_the_same_wheel_as_torchwheel_wheel(
    tmp_path: Path, private_env: dict[str, str], torch214_python: str
) -> None:
    pytest.importorskip("build", reason="pypa/build is installed by `nox -s tests`")
    build_root = tmp_path / "cells"
    direct = tmp_path / "direct"
    run(
        sys.executable, "-m", "torchwheel", "wheel", "--cell", "cpu", "--python", torch214_python,
        "--build-dir", build_root, "--out", direct, env=private_env, cwd=REPO,
    )  # fmt: skip
    front_end = tmp_path / "front-end"
    run(
        sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", front_end,
        "-C", "cell=cpu", "-C", f"python={torch214_python}", "-C", f"build-dir={build_root}", VARIANT,
        env=private_env,
    )  # fmt: skip
    (a,) = direct.glob("*.whl")
    (b,) = front_end.glob("*.whl")
    assert a.name == b.name
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
