"""The hatchling build hook: a project built by hatchling gets its `_torchwheel/` dir with one
line in its pyproject.toml, and torchwheel in its build requirements:

    [build-system]
    requires = ["hatchling", "torchwheel"]
    [tool.hatch.build.targets.wheel.hooks.torchwheel]

Registered through the `hatch` entry point group (torchwheel's pyproject.toml).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface
from hatchling.plugin import hookimpl

from torchwheel.config import PYPROJECT, read_pyproject
from torchwheel.release.packaged import packaged_files


class TorchwheelBuildHook(BuildHookInterface):  # type: ignore[misc]  # hatchling is untyped
    PLUGIN_NAME = "torchwheel"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return  # an sdist carries the whole source tree already
        self._scratch = Path(tempfile.mkdtemp(prefix="torchwheel-hatch-"))
        config = read_pyproject(Path(self.root) / PYPROJECT)
        for inside, path in packaged_files(config, self._scratch).items():
            build_data["force_include"][str(path)] = inside

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if scratch := getattr(self, "_scratch", None):
            shutil.rmtree(scratch, ignore_errors=True)


@hookimpl  # type: ignore[untyped-decorator]
def hatch_register_build_hook() -> type[BuildHookInterface]:
    return TorchwheelBuildHook
