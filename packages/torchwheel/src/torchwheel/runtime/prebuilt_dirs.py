"""Where a project's prebuilt binaries are looked for: the directories of `<PREFIX>_AOT_PATH`
first, then `<package>/data/aot` and each of its subdirectories (one per installed variant wheel).

A directory counts when it holds a `manifest.json`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torchwheel.project import Project
from torchwheel.runtime.manifest import MANIFEST_NAME


def prebuilt_dirs(project: Project, extra: Sequence[Path] = ()) -> list[Path]:
    roots = list(extra)
    if project.package_dir is not None:
        roots.append(project.package_dir / "data" / "aot")
    found = []
    for root in roots:
        if (root / MANIFEST_NAME).is_file():
            found.append(root)
        if root.is_dir():
            found.extend(sorted(d for d in root.iterdir() if (d / MANIFEST_NAME).is_file()))
    return found
