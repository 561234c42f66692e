"""Where a project's prebuilt binaries are looked for: the directories of `<PREFIX>_AOT_PATH`
first, then `<package>/data/aot` and each of its subdirectories (one per installed variant wheel).

A directory counts when it holds a `manifest.json` (of any kind: a FIFO or a symlink there is
refused when it is read, with its reason, rather than passed over in silence).
"""

from __future__ import annotations

import os
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
        try:
            if os.path.lexists(root / MANIFEST_NAME):
                found.append(root)
            if root.is_dir():
                found.extend(sorted(d for d in root.iterdir() if os.path.lexists(d / MANIFEST_NAME)))
        except OSError:
            # Unreadable (no permission): kept, so that reading its manifest says why in one line.
            found.append(root)
    return found
