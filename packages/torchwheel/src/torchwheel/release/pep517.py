"""A PEP 517 build backend for variant wheels, so that the standard front end builds them:

    python -m build --wheel -C cell=cu130 packages/minfer-variant

The source tree's pyproject.toml names the matrix and the project:

    [build-system]
    build-backend = "torchwheel.release.pep517"
    [tool.torchwheel.variant]
    matrix = "../../ci/matrix.toml"

Config settings are torchwheel's settings by their command-line names (settings.py resolves
them, over the environment and the project's table): `cell` (or TORCHWHEEL_CELL: what to build),
`python` (an interpreter with the cell's torch), `build-dir`, `envs-dir`, `jobs`.
A variant wheel is built from the repository only: there is no sdist of it.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from torchwheel.errors import SettingsError

_CELL = "cell"  # what to build, not how: no setting, so read here (settings.py's docstring)
# The settings `torchwheel wheel` takes as options (a cell's archs are the matrix's own).
_CONFIG_SETTINGS = ("python", "build_dir", "envs_dir", "max_jobs")


def build_wheel(
    wheel_directory: str, config_settings: dict[str, object] | None = None, metadata_directory: str | None = None
) -> str:
    from torchwheel.project import load_project
    from torchwheel.release.cells import build_variant, prepare_cell_build
    from torchwheel.release.envs import cell_environment, cell_target
    from torchwheel.release.matrix import load_matrix

    table = tomllib.loads(Path("pyproject.toml").read_text()).get("tool", {}).get("torchwheel", {}).get("variant")
    if not isinstance(table, dict) or "matrix" not in table:
        raise SettingsError('pyproject.toml has no [tool.torchwheel.variant] matrix = "..."; add it')
    config = dict(config_settings or {})
    cell_id = config.pop(_CELL, None) or os.environ.get("TORCHWHEEL_CELL")
    if not cell_id:
        raise SettingsError("no cell to build; pass -C cell=<id> (e.g. cu130) or set TORCHWHEEL_CELL")
    flags = _flags(config)
    matrix = load_matrix(Path(table["matrix"]))
    cell = matrix.cell(str(cell_id))
    project = load_project(str(table.get("project", matrix.project)))
    settings = project.settings(flags, flag_style="config setting")
    interpreter = Path(settings.python) if settings.python else cell_environment(cell, Path(settings.envs_dir))
    build = prepare_cell_build(
        project,
        cell_target(cell, interpreter),
        build_root=Path(settings.build_dir),
        out_dir=Path(wheel_directory),
        settings=settings,
        max_wheel_bytes=matrix.max_wheel_bytes,
    )
    return build_variant(cell, build).wheel.name


def _flags(config: dict[str, object]) -> dict[str, object]:
    """The config settings by setting key; one line for a name that is no setting of this backend."""
    from torchwheel.settings import SETTINGS

    keys = {flag: key for key in _CONFIG_SETTINGS if (flag := SETTINGS[key].config_setting())}
    unknown = sorted(set(config) - set(keys))
    if unknown:
        raise SettingsError(
            f"-C {unknown[0]} is no config setting of torchwheel.pep517; use {', '.join(sorted([_CELL, *keys]))}"
        )
    return {keys[name]: value for name, value in config.items()}


def build_sdist(sdist_directory: str, config_settings: dict[str, object] | None = None) -> str:
    raise SettingsError("a variant wheel is built from the repository, not from an sdist; use --wheel")
