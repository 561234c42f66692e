"""minfer's distributions carry csrc/, so JIT works from an installed minfer alone: the wheel
built from the checkout and the wheel built from minfer's sdist both hold every source."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

pytest.importorskip("build", reason="pypa/build is installed by `nox -s tests`")

CSRC_FILES = sorted(
    str(p.relative_to(REPO / "csrc")) for p in (REPO / "csrc").rglob("*") if p.suffix in {".h", ".cuh", ".cpp", ".cu"}
)


def run(*command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def wheel_csrc(wheel: Path) -> list[str]:
    prefix = "minfer/csrc/"
    return sorted(n[len(prefix) :] for n in zipfile.ZipFile(wheel).namelist() if n.startswith(prefix))


def build(kind: str, source: Path, out: Path) -> None:
    """pypa/build, without isolation: this test checks our hook, not the index."""
    run(sys.executable, "-m", "build", "--no-isolation", f"--{kind}", "--outdir", str(out), str(source))


def test_the_wheel_from_a_checkout_carries_every_source(tmp_path: Path) -> None:
    build("wheel", REPO / "packages" / "minfer", tmp_path)
    (wheel,) = tmp_path.glob("minfer-*.whl")
    assert wheel_csrc(wheel) == CSRC_FILES


def test_the_wheel_from_the_sdist_carries_every_source(tmp_path: Path) -> None:
    build("sdist", REPO / "packages" / "minfer", tmp_path)
    (sdist,) = tmp_path.glob("minfer-*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    build("wheel", unpacked, tmp_path / "from-sdist")
    (wheel,) = (tmp_path / "from-sdist").glob("minfer-*.whl")
    assert wheel_csrc(wheel) == CSRC_FILES
