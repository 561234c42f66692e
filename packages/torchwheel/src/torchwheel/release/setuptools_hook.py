"""The setuptools hook: a project built by setuptools gets its `_torchwheel/` dir with no line
of its own beyond torchwheel in its build requirements:

    [build-system]
    requires = ["setuptools", "torchwheel"]

setuptools calls `finalize_options` for every distribution it builds while torchwheel is
installed (the `setuptools.finalize_distribution_options` entry point in torchwheel's
pyproject.toml); it does nothing unless the project's pyproject.toml has a `[tool.torchwheel]`
table, and then copies the files into the wheel's build dir after `build_py`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from torchwheel.config import PYPROJECT, find_pyproject, read_pyproject
from torchwheel.release.packaged import packaged_files


def finalize_options(distribution: Any) -> None:
    pyproject = Path.cwd() / PYPROJECT  # setuptools builds in the project's directory
    if not pyproject.is_file() or find_pyproject(Path.cwd()) != pyproject:
        return
    base = distribution.get_command_class("build_py")

    class BuildPyWithTorchwheel(base):  # type: ignore[misc, valid-type]  # setuptools is untyped
        def run(self) -> None:
            super().run()
            with tempfile.TemporaryDirectory(prefix="torchwheel-setuptools-") as scratch:
                for inside, path in packaged_files(read_pyproject(pyproject), Path(scratch)).items():
                    target = Path(self.build_lib) / inside
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target)

    distribution.cmdclass["build_py"] = BuildPyWithTorchwheel
