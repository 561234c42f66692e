"""`Project`: a kernel library as torchwheel sees it: its specs, its settings prefix, its package;
and `load_project`, which finds one from what a user names on the command line."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torchwheel.errors import SettingsError
from torchwheel.settings import FlagStyle, Settings, Sources
from torchwheel.spec import JitSpec

ENTRY_POINT_GROUP = "torchwheel.projects"


@dataclass(frozen=True)
class Project:
    """A library of specs.

    `make_specs` builds the specs on demand (they check that their sources exist, which an
    import must not fail on). `package` is the import package that owns them, where known;
    installed variant wheels are found by the project's name (runtime/prebuilt_dirs.py).
    """

    name: str
    env_prefix: str
    make_specs: Callable[[], Sequence[JitSpec]]
    package: str | None = None
    version: str | None = None  # where the project's own pyproject.toml states it; else the installed one
    settings_table: Mapping[str, object] = field(default_factory=dict, compare=False)  # [tool.torchwheel.settings]
    where: str = ""  # the file the project was read from, for messages about its table

    def settings(
        self,
        flags: Mapping[str, object] | None = None,
        flag_style: FlagStyle = "option",
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """This project's settings: its table, then the environment, then `flags` (settings.py)."""
        return Settings.resolve(
            Sources(
                self.name,
                self.env_prefix,
                self.settings_table,
                self.where,
                os.environ if environ is None else environ,
                flags or {},
                flag_style,
            )
        )


def load_project(reference: str | None = None, start: Path | None = None) -> Project:
    """The project a user names: nothing (the `[tool.torchwheel]` of the nearest pyproject.toml
    from `start`, by default the current directory), a path to a project dir or its
    pyproject.toml, `module:attribute` naming a `Project`, or an installed project's name (an
    installed package carrying its table, or an entry point of the `torchwheel.projects` group)."""
    from torchwheel import config

    if reference is None:
        here = (start or Path.cwd()).absolute()
        found = config.find_pyproject(here)
        if found is None:
            raise SettingsError(
                f"no pyproject.toml with a [tool.torchwheel] table in {here} or above; run this in the "
                "project's directory, or name the project (its name, a path, or module:attribute)"
            )
        return config.read_pyproject(found).project()
    path = Path(reference)
    if path.name == config.PYPROJECT or "/" in reference or path.is_dir():
        return config.read_pyproject(path if path.name == config.PYPROJECT else path / config.PYPROJECT).project()
    if ":" in reference:
        return _from_attribute(reference)
    return _installed(reference)


def _from_attribute(reference: str) -> Project:
    module_name, _, attribute = reference.partition(":")
    try:
        value = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise SettingsError(
            f"project {reference!r} cannot be imported ({error}); check the module:attribute"
        ) from error
    if not isinstance(value, Project):
        raise SettingsError(f"{reference!r} is a {type(value).__name__}, not a torchwheel Project")
    return value


def _installed(name: str) -> Project:
    """An installed project, found without importing it: its package's packaged table (or, for
    an editable install, its checkout's pyproject.toml), else an entry point."""
    from importlib.metadata import entry_points

    from torchwheel import config

    package_dir = _package_dir(name.replace("-", "_").replace(".", "_"))
    if package_dir is not None:
        packaged = config.read_packaged(package_dir)
        if packaged is not None:
            return packaged.project()
        pyproject = config.find_pyproject(package_dir)
        if pyproject is not None:
            found = config.read_pyproject(pyproject)
            if found.name == name:
                return found.project()
    points = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not points:
        raise SettingsError(
            f"project {name!r} is not installed (known: {', '.join(installed_projects()) or 'none'}); "
            "install it, run this in its directory, or pass module:attribute"
        )
    value = points[0].load()
    if not isinstance(value, Project):
        raise SettingsError(f"{name!r} is a {type(value).__name__}, not a torchwheel Project")
    return value


def _package_dir(package: str) -> Path | None:
    """Where package `package` would be imported from; finding it does not run its `__init__`."""
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations)))


def installed_projects() -> list[str]:
    """The names of the installed projects: packages on `sys.path` that carry a torchwheel table,
    and entry points of the `torchwheel.projects` group."""
    from importlib.metadata import entry_points

    from torchwheel import config

    names = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    for entry in sys.path:
        try:
            packages = os.listdir(entry or ".")
        except OSError:  # a zip file, a missing dir
            continue
        for package in packages:
            if os.path.isfile(os.path.join(entry or ".", package, config.PACKAGED_DIR, config.PACKAGED_TABLE)):
                packaged = config.read_packaged(Path(entry or ".", package))
                if packaged is not None:
                    names.add(packaged.name)
    return sorted(names)


def default_projects(start: Path | None = None) -> list[str]:
    """What `doctor` and `cache` act on when no project is named: the project of the current
    directory's pyproject.toml (as its path), then every installed project of another name."""
    from torchwheel import config

    found = config.find_pyproject((start or Path.cwd()).absolute())
    if found is None:
        return installed_projects()
    here = config.read_pyproject(found).name
    return [str(found), *(name for name in installed_projects() if name != here)]
