"""A PEP 517 build backend for variant wheels, so that the standard front end builds them:

    python -m build --wheel -C cell=cu130 packages/minfer-variant

The source tree's pyproject.toml names the matrix and the project:

    [build-system]
    build-backend = "torchwheel.release.pep517"
    [tool.torchwheel.variant]
    matrix = "../../ci/matrix.toml"

Config settings (or environment): `cell` (TORCHWHEEL_CELL), `python` (TORCHWHEEL_PYTHON: an
interpreter with the cell's torch), `build-dir` (TORCHWHEEL_BUILD_DIR), `envs-dir`.
A variant wheel is built from the repository only: there is no sdist of it.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from torchwheel.errors import SettingsError


def _setting(config: dict[str, object] | None, key: str, variable: str, default: str | None = None) -> str | None:
    value = (config or {}).get(key) or os.environ.get(variable) or default
    return str(value) if value is not None else None


def build_wheel(
    wheel_directory: str, config_settings: dict[str, object] | None = None, metadata_directory: str | None = None
) -> str:
    from torchwheel.project import load_project
    from torchwheel.release.cells import build_variant, prepare_cell_build
    from torchwheel.release.envs import cell_environment, cell_target
    from torchwheel.release.matrix import load_matrix
    from torchwheel.settings import Settings, default_envs_dir

    table = tomllib.loads(Path("pyproject.toml").read_text()).get("tool", {}).get("torchwheel", {}).get("variant")
    if not isinstance(table, dict) or "matrix" not in table:
        raise SettingsError('pyproject.toml has no [tool.torchwheel.variant] matrix = "..."; add it')
    cell_id = _setting(config_settings, "cell", "TORCHWHEEL_CELL")
    if not cell_id:
        raise SettingsError("no cell to build; pass -C cell=<id> (e.g. cu130) or set TORCHWHEEL_CELL")
    matrix = load_matrix(Path(table["matrix"]))
    cell = matrix.cell(cell_id)
    project = load_project(str(table.get("project", matrix.project)))
    jobs = Settings.from_env(project.name, project.env_prefix).jobs
    python = _setting(config_settings, "python", "TORCHWHEEL_PYTHON")
    envs_dir = Path(_setting(config_settings, "envs-dir", "TORCHWHEEL_ENVS_DIR") or default_envs_dir())
    interpreter = Path(python) if python else cell_environment(cell, envs_dir)
    build_root = Path(_setting(config_settings, "build-dir", "TORCHWHEEL_BUILD_DIR", "build/cells") or "build/cells")
    build = prepare_cell_build(
        project,
        cell_target(cell, interpreter),
        build_root=build_root,
        out_dir=Path(wheel_directory),
        jobs=jobs,
        max_wheel_bytes=matrix.max_wheel_bytes,
    )
    return build_variant(cell, build).wheel.name


def build_sdist(sdist_directory: str, config_settings: dict[str, object] | None = None) -> str:
    raise SettingsError("a variant wheel is built from the repository, not from an sdist; use --wheel")
