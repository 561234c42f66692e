"""`load_package`: the one call an adopting package's `__init__.py` makes.

    import torchwheel
    torchwheel.load_package(__name__)

It loads every spec of the package's `[tool.torchwheel]` table that the running torch can use,
prebuilt where a variant wheel fits and JIT-built otherwise, in the table's load order, and
returns the `Loader` (whose `loaded()` says where each came from). torchwheel's own command
line imports packages only to read their specs, never to load them: it sets `DEFER_LOADING`.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from pathlib import Path

from torchwheel.config import find_pyproject, read_packaged, read_pyproject
from torchwheel.errors import SettingsError
from torchwheel.project import Project
from torchwheel.runtime.loader import Loader

_log = logging.getLogger("torchwheel")

DEFER_LOADING: ContextVar[bool] = ContextVar("torchwheel_defer_loading", default=False)


def package_project(package: str) -> Project:
    """The project of an imported package: the table it carries (an installed wheel), else the
    `[tool.torchwheel]` of the nearest pyproject.toml above it (a checkout, an editable install)."""
    module = sys.modules.get(package)
    location = getattr(module, "__file__", None)
    if location is None:
        raise SettingsError(
            f"torchwheel.load_package({package!r}): no imported package of that name has a file; "
            "call it from the package's __init__.py as load_package(__name__)"
        )
    package_dir = Path(location).parent
    config = read_packaged(package_dir)
    if config is None:
        pyproject = find_pyproject(package_dir)
        if pyproject is None:
            raise SettingsError(
                f"package {package!r} at {package_dir} carries no torchwheel table and no pyproject.toml above "
                "it has one; build it with torchwheel's build hook (docs/adopting.md)"
            )
        config = read_pyproject(pyproject)
    return config.project()


def load_package(package: str) -> Loader:
    loader = Loader(package_project(package))
    if DEFER_LOADING.get():
        return loader
    cuda = _cuda_usable()
    for spec in loader.specs.values():
        if spec.device == "cuda" and not cuda:
            _log.info("torchwheel: %s not loaded: %s", spec.name, "this torch has no CUDA or sees no GPU")
            continue
        loader.load(spec.name)
    return loader


def _cuda_usable() -> bool:
    import torch

    return torch.version.cuda is not None and torch.cuda.is_available()
