"""Put minfer's C++/CUDA sources into its distributions.

The sources live at the repository's top level (`csrc/`), outside this package, yet an
installed minfer must carry them so that JIT works from it alone. A checkout takes them from
`../../csrc`; an unpacked sdist already holds them at `src/minfer/csrc`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import tomllib
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE_SUFFIXES = {".h", ".hpp", ".cuh", ".c", ".cc", ".cpp", ".cu"}
# What an installed minfer carries of its [tool.torchwheel] table (torchwheel/config.py reads
# it as minfer/_torchwheel/project.json). minfer's specs are generated, so no glob needs
# resolving; the matrix is for building wheels only.
PACKAGED_KEYS = ("name", "env_prefix", "package", "generate_specs")


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        root = Path(self.root)
        for csrc in (root / "src" / "minfer" / "csrc", root.parent.parent / "csrc"):
            if (csrc / "include").is_dir():
                break
        else:
            raise RuntimeError(
                f"minfer's C++/CUDA sources are missing (looked in {root / 'src/minfer/csrc'} and "
                f"{root.parent.parent / 'csrc'}); build from a full checkout or from minfer's sdist"
            )
        inside = "src/minfer/csrc" if self.target_name == "sdist" else "minfer/csrc"
        if self.target_name == "wheel":
            table = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["torchwheel"]
            self._scratch = tempfile.mkdtemp(prefix="minfer-build-")
            packaged = Path(self._scratch) / "project.json"
            packaged.write_text(json.dumps({k: table[k] for k in PACKAGED_KEYS}, indent=2) + "\n")
            build_data["force_include"][str(packaged)] = "minfer/_torchwheel/project.json"
        # Sources and headers only: never a build tree or a stray script that sits beside them.
        for path in sorted(csrc.rglob("*")):
            if path.suffix in SOURCE_SUFFIXES and path.is_file():
                build_data["force_include"][str(path)] = f"{inside}/{path.relative_to(csrc)}"

    def finalize(self, version: str, build_data: dict, artifact_path: str) -> None:
        if scratch := getattr(self, "_scratch", None):
            shutil.rmtree(scratch, ignore_errors=True)
