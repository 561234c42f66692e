"""Where a project's prebuilt binaries are looked for: the directories of `<PREFIX>_AOT_PATH`
first, then the directory of each installed variant wheel.

A variant wheel installs its files in a top-level directory of its own,
`<project>.<part>.prebuilt/` beside the packages on `sys.path` (release/cells.py writes it).
The dots make it a name Python can never import: it cannot become a namespace package that
hides the real package (as a `<package>/data/` dir of a variant did beside an editable install),
and uninstalling the variant removes the whole directory, which is its own.

A directory counts when it holds a `manifest.json` (of any kind: a FIFO or a symlink there is
refused when it is read, with its reason, rather than passed over in silence).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from torchwheel.project import Project
from torchwheel.runtime.manifest import MANIFEST_NAME

PREBUILT_SUFFIX = ".prebuilt"


def variant_dir_name(project: str, part_id: str) -> str:
    return f"{project.lower()}.{part_id}{PREBUILT_SUFFIX}"


def prebuilt_dirs(project: Project, extra: Sequence[Path] = ()) -> list[Path]:
    found = []
    for root in extra:
        try:
            if os.path.lexists(root / MANIFEST_NAME):
                found.append(root)
            if root.is_dir():
                found.extend(sorted(d for d in root.iterdir() if os.path.lexists(d / MANIFEST_NAME)))
        except OSError:
            # Unreadable (no permission): kept, so that reading its manifest says why in one line.
            found.append(root)
    return found + installed_variant_dirs(project.name)


def installed_variant_dirs(project: str, search: Sequence[str] | None = None) -> list[Path]:
    """The variant-wheel directories of `project` on `sys.path` (or `search`), in path order."""
    prefix = f"{project.lower()}."
    found: list[Path] = []
    for entry in sys.path if search is None else search:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:  # a zip file, a missing dir
            continue
        found.extend(
            Path(entry or ".").absolute() / name
            for name in names
            if name.startswith(prefix) and name.endswith(PREBUILT_SUFFIX)
        )
    return found
