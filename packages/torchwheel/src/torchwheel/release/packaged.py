"""What an adopting package's own wheel must carry for JIT to work from it alone: its
`[tool.torchwheel]` table, every glob resolved, and the sources and headers the specs name, under
`<package>/_torchwheel/` (config.py reads it back). The build-backend hooks (hatch_hook.py,
setuptools_hook.py) only decide where these files go in their backend's terms."""

from __future__ import annotations

import json
from pathlib import Path

from torchwheel.config import PACKAGED_DIR, PACKAGED_SOURCES, PACKAGED_TABLE, ProjectConfig, packaged_table


def packaged_files(config: ProjectConfig, scratch: Path) -> dict[str, Path]:
    """Each file of the package's `_torchwheel/` dir: its path inside the wheel (posix, under the
    package) and where it is now. The table is written into `scratch`."""
    table, sources = packaged_table(config)
    written = scratch / PACKAGED_TABLE
    written.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    inside = f"{config.package}/{PACKAGED_DIR}"
    files = {f"{inside}/{PACKAGED_TABLE}": written}
    files.update({f"{inside}/{PACKAGED_SOURCES}/{relative}": path for relative, path in sorted(sources.items())})
    return files
