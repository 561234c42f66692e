"""`Project`: a kernel library as torchwheel sees it: its specs, its settings prefix, its package."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from torchwheel.errors import SettingsError
from torchwheel.spec import JitSpec

ENTRY_POINT_GROUP = "torchwheel.projects"


@dataclass(frozen=True)
class Project:
    """A library of specs.

    `make_specs` builds the specs on demand (they check that their sources exist, which an
    import must not fail on). `package_dir` is where installed variant wheels put their prebuilt
    files (`<package_dir>/data/aot/<cell>/`; the search is runtime/prebuilt_dirs.py).
    """

    name: str
    env_prefix: str
    make_specs: Callable[[], Sequence[JitSpec]]
    package_dir: Path | None = None


def load_project(reference: str) -> Project:
    """A project by entry-point name (`minfer`) or by `module:attribute`."""
    if ":" in reference:
        module_name, _, attribute = reference.partition(":")
        try:
            value = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as error:
            raise SettingsError(
                f"project {reference!r} cannot be imported ({error}); check the module:attribute"
            ) from error
    else:
        from importlib.metadata import entry_points

        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == reference]
        if not found:
            known = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
            raise SettingsError(
                f"project {reference!r} is not installed (known: {', '.join(known) or 'none'}); "
                "install it or pass module:attribute"
            )
        value = found[0].load()
    if not isinstance(value, Project):
        raise SettingsError(f"{reference!r} is a {type(value).__name__}, not a torchwheel Project")
    return value


def installed_projects() -> list[str]:
    """The names of the projects registered under the `torchwheel.projects` entry point group."""
    from importlib.metadata import entry_points

    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})
