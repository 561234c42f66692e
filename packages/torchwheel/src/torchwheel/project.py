"""`Project`: a kernel library as torchwheel sees it: its specs, settings prefix and prebuilt dirs."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import SettingsError
from .manifest import MANIFEST_NAME
from .spec import JitSpec

ENTRY_POINT_GROUP = "torchwheel.projects"


@dataclass(frozen=True)
class Project:
    """A library of specs.

    `make_specs` builds the specs on demand (they check that their sources exist, which an
    import must not fail on). Prebuilt binaries are looked for in `<package_dir>/data/aot`, in
    each of its subdirectories (one per installed variant wheel), and first of all in the
    directories of `<PREFIX>_AOT_PATH`.
    """

    name: str
    env_prefix: str
    make_specs: Callable[[], Sequence[JitSpec]]
    package_dir: Path | None = None

    def aot_dirs(self, extra: Sequence[Path] = ()) -> list[Path]:
        roots = list(extra)
        if self.package_dir is not None:
            roots.append(self.package_dir / "data" / "aot")
        found = []
        for root in roots:
            if (root / MANIFEST_NAME).is_file():
                found.append(root)
            if root.is_dir():
                found.extend(sorted(d for d in root.iterdir() if (d / MANIFEST_NAME).is_file()))
        return found


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
