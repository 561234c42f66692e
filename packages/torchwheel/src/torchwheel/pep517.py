"""A PEP 517 build backend for variant wheels, so that the standard front end builds them:

    python -m build --wheel -C cell=cpu-torch213 packages/minfer-variant

The source tree's pyproject.toml names the matrix and the project:

    [build-system]
    build-backend = "torchwheel.pep517"
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

from .errors import SettingsError


def _setting(config: dict | None, key: str, variable: str, default: str | None = None) -> str | None:
    value = (config or {}).get(key) or os.environ.get(variable) or default
    return str(value) if value is not None else None


def build_wheel(
    wheel_directory: str, config_settings: dict | None = None, metadata_directory: str | None = None
) -> str:
    from .build import default_jobs
    from .envs import cell_environment, cell_target
    from .matrix import load_matrix
    from .project import load_project
    from .settings import Settings
    from .variant import build_variant

    table = tomllib.loads(Path("pyproject.toml").read_text()).get("tool", {}).get("torchwheel", {}).get("variant")
    if not isinstance(table, dict) or "matrix" not in table:
        raise SettingsError('pyproject.toml has no [tool.torchwheel.variant] matrix = "..."; add it')
    cell_id = _setting(config_settings, "cell", "TORCHWHEEL_CELL")
    if not cell_id:
        raise SettingsError("no cell to build; pass -C cell=<id> (e.g. cpu-torch213) or set TORCHWHEEL_CELL")
    matrix = load_matrix(Path(table["matrix"]))
    cell = matrix.cell(cell_id)
    project = load_project(str(table.get("project", matrix.project)))
    python = _setting(config_settings, "python", "TORCHWHEEL_PYTHON")
    envs_dir = Path(_setting(config_settings, "envs-dir", "TORCHWHEEL_ENVS_DIR", ".venvs") or ".venvs")
    interpreter = Path(python) if python else cell_environment(cell, envs_dir)
    build_root = Path(_setting(config_settings, "build-dir", "TORCHWHEEL_BUILD_DIR", "build/cells") or "build/cells")
    result = build_variant(
        cell,
        project,
        cell_target(cell, interpreter),
        build_root,
        Path(wheel_directory),
        jobs=default_jobs(Settings.from_env(project.name, project.env_prefix).max_jobs),
        max_wheel_bytes=matrix.max_wheel_bytes,
    )
    return result.wheel.name


def build_sdist(sdist_directory: str, config_settings: dict | None = None) -> str:
    raise SettingsError("a variant wheel is built from the repository, not from an sdist; use --wheel")
