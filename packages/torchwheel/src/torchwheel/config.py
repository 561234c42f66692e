"""`[tool.torchwheel]`: a project declared in its own `pyproject.toml`, read without importing it.

The reference of every key, with its default, is docs/config.md. Keys are snake_case, the
names `JitSpec` and the matrix file use, so that one idea has one name wherever an author meets it.

An installed package carries the same table, with its sources, under `<package>/_torchwheel/`
(written by the build hooks in release/hooks.py): `project.json` holds the table with every glob
already resolved to the files it matched, and `src/` the files. So the installed package needs
no `pyproject.toml`, and the run time reads one format through one parser.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchwheel.errors import SettingsError, SpecError
from torchwheel.files import read_regular, read_toml
from torchwheel.project import Project
from torchwheel.settings import TABLE_KEYS
from torchwheel.spec import DEVICES, SERIES_PATTERN, TORCH_ABIS, Device, JitSpec, TorchAbi, check_unique_names
from torchwheel.tables import check_known_keys, kind_of, shown

PYPROJECT = "pyproject.toml"
PACKAGED_DIR = "_torchwheel"  # inside the installed package
PACKAGED_TABLE = "project.json"
PACKAGED_SOURCES = "src"

# `variant` is the PEP 517 variant backend's own table (release/pep517.py), read there.
_TOP_KEYS = frozenset(
    {
        "name",
        "env_prefix",
        "package",
        "version",
        "torch_abi",
        "min_torch",
        "spec",
        "generate_specs",
        "matrix",
        "settings",
        "variant",
    }
)
_SPEC_KEYS = frozenset(
    {
        "name",
        "sources",
        "torch_sources",
        "device",
        "include_dirs",
        "extra_cflags",
        "extra_cuda_cflags",
        "extra_ldflags",
        "after",
        "torch_abi",
    }
)
_PATH_KEYS = ("sources", "torch_sources", "include_dirs")
_FLAG_KEYS = ("extra_cflags", "extra_cuda_cflags", "extra_ldflags")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REFERENCE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class SpecTable:
    """One `[[tool.torchwheel.spec]]`: its paths are globs relative to the project's root."""

    name: str
    device: Device
    paths: dict[str, tuple[str, ...]]  # sources, torch_sources, include_dirs
    flags: dict[str, tuple[str, ...]]  # extra_cflags, extra_cuda_cflags, extra_ldflags
    after: tuple[str, ...]  # specs whose ops this one's registrations need: loaded first
    torch_abi: TorchAbi | None  # None: the project's


@dataclass(frozen=True)
class ProjectConfig:
    """A project's `[tool.torchwheel]`, checked; `root` is the directory its globs start from."""

    name: str
    env_prefix: str
    package: str
    specs: tuple[SpecTable, ...]
    generate_specs: str | None  # "module:function" returning more specs (generated families)
    matrix: Path | dict[str, Any] | None
    root: Path
    where: str  # the file it was read from, for messages
    version: str | None = None  # [project] version of a pyproject.toml that states it
    torch_abi: TorchAbi = "full"  # the specs' default
    min_torch: str | None = None  # the stable specs' minimum torch
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)  # [tool.torchwheel.settings], keys checked

    def make_specs(self) -> list[JitSpec]:
        specs = [self.spec_of(table) for table in self.specs]
        if self.generate_specs is not None:
            specs.extend(self._generated())
        check_unique_names(specs)
        return _in_load_order(specs, {t.name: t.after for t in self.specs}, self.where)

    def project(self) -> Project:
        return Project(
            self.name,
            self.env_prefix,
            self.make_specs,
            package=self.package,
            version=self.version,
            settings_table=self.settings,
            where=self.where,
        )

    def spec_of(self, table: SpecTable) -> JitSpec:
        paths = {key: self._matches(table, key, globs) for key, globs in table.paths.items()}
        abi = table.torch_abi or self.torch_abi
        return JitSpec(
            name=table.name,
            device=table.device,
            root=self.root,
            torch_abi=abi,
            min_torch=self.min_torch if abi == "stable" else None,
            **paths,  # type: ignore[arg-type]
            **table.flags,
        )

    def _matches(self, table: SpecTable, key: str, globs: tuple[str, ...]) -> list[Path]:
        found: list[Path] = []
        for pattern in globs:
            matches = sorted(Path(p) for p in glob.glob(pattern, root_dir=self.root, recursive=True))
            if not matches:
                raise SpecError(
                    f"{self.where}: [[tool.torchwheel.spec]] {table.name!r} {key} {pattern!r} matches no file "
                    f"under {self.root}; fix the glob (it is relative to the project's directory)"
                )
            found.extend(self.root / m for m in matches if self.root / m not in found)
        return found

    def _generated(self) -> Sequence[JitSpec]:
        assert self.generate_specs is not None
        module_name, _, attribute = self.generate_specs.partition(":")
        label = f"{self.where}: generate_specs = {self.generate_specs!r}"
        try:
            function: Callable[[], Sequence[JitSpec]] = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as error:
            raise SettingsError(f"{label} cannot be imported ({error}); check the module:function") from None
        specs = function()
        if not isinstance(specs, (list, tuple)) or not all(isinstance(s, JitSpec) for s in specs):
            raise SettingsError(f"{label} returned {kind_of(specs)}; it must return a list of torchwheel.JitSpec")
        return specs


def _in_load_order(specs: list[JitSpec], after: dict[str, tuple[str, ...]], where: str) -> list[JitSpec]:
    """`specs` in declaration order, moved only as far as `after` needs: each after the specs it names."""
    by_name = {s.name: s for s in specs}
    ordered: list[JitSpec] = []
    placed: set[str] = set()
    placing: list[str] = []

    def place(name: str) -> None:
        if name in placed:
            return
        if name in placing:
            cycle = " -> ".join([*placing[placing.index(name) :], name])
            raise SettingsError(f"{where}: spec after = [...] forms a cycle ({cycle}); remove one of them")
        placing.append(name)
        for needed in after.get(name, ()):
            if needed not in by_name:
                raise SettingsError(
                    f"{where}: spec {name!r} has after = [{needed!r}], which names no spec; "
                    f"use one of {', '.join(sorted(by_name))}"
                )
            place(needed)
        placing.pop()
        placed.add(name)
        ordered.append(by_name[name])

    for spec in specs:
        place(spec.name)
    return ordered


def find_pyproject(start: Path) -> Path | None:
    """The nearest `pyproject.toml` with a `[tool.torchwheel]` table, from `start` upwards."""
    for directory in (start, *start.parents):
        candidate = directory / PYPROJECT
        if candidate.is_file() and "torchwheel" in _tool_tables(candidate):
            return candidate
    return None


def _tool_tables(path: Path) -> dict[str, Any]:
    tool = read_toml(path, "project file", "fix it or pass the project explicitly").get("tool", {})
    return tool if isinstance(tool, dict) else {}


def read_pyproject(path: Path) -> ProjectConfig:
    """The `[tool.torchwheel]` table of `path`; its globs are relative to the file's directory."""
    data = read_toml(path, "project file", "pass the project's pyproject.toml")
    tool = data.get("tool", {})
    table = tool.get("torchwheel") if isinstance(tool, dict) else None
    if not isinstance(table, dict):
        raise SettingsError(f"{path} has no [tool.torchwheel] table; add one (docs/config.md) or run torchwheel init")
    metadata = data.get("project")
    if not isinstance(metadata, dict):
        metadata = {}
    config = parse_table(table, path.parent.absolute(), str(path), metadata.get("name"))
    version = metadata.get("version")
    return dataclasses.replace(config, version=version) if isinstance(version, str) else config


def _table_version(table: dict[str, Any], where: str) -> str | None:
    """`version`: for a project whose version is in its setup.py, not in [project]."""
    return _string(table, "version", where, None)


def read_packaged(package_dir: Path) -> ProjectConfig | None:
    """The table an installed package carries (`<package>/_torchwheel/project.json`), if any."""
    path = package_dir / PACKAGED_DIR / PACKAGED_TABLE
    if not os.path.lexists(path):
        return None
    try:
        data = json.loads(read_regular(path, 16 << 20))
    except (OSError, ValueError, RecursionError) as error:
        raise SettingsError(f"{path} cannot be read ({error}); reinstall the package") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path} is not a table; reinstall the package")
    return parse_table(data, path.parent / PACKAGED_SOURCES, str(path), None)


def parse_table(table: dict[str, Any], root: Path, where: str, distribution: str | None) -> ProjectConfig:
    label = "in [tool.torchwheel]"
    check_known_keys(table, _TOP_KEYS, label, where)
    name = _string(table, "name", where, distribution)
    if name is None:
        raise SettingsError(f'{where}: [tool.torchwheel] has no name and [project] none either; add name = "<name>"')
    env_prefix = _string(table, "env_prefix", where, re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_"))
    package = _string(table, "package", where, re.sub(r"[-.]+", "_", name).lower())
    assert env_prefix is not None and package is not None
    for key, value in (("env_prefix", env_prefix), ("package", package)):
        if not _IDENTIFIER.fullmatch(value):
            raise SettingsError(
                f"{where}: [tool.torchwheel] {key} = {value!r} is not an identifier; use letters, digits and _"
            )
    generate = _string(table, "generate_specs", where, None)
    if generate is not None and not _REFERENCE.fullmatch(generate):
        raise SettingsError(
            f"{where}: [tool.torchwheel] generate_specs = {generate!r} is not module:function; "
            'write e.g. "mypkg.specs:make"'
        )
    raw_specs = table.get("spec", [])
    if not isinstance(raw_specs, list):
        raise SettingsError(
            f"{where}: [tool.torchwheel] spec is {kind_of(raw_specs)}; write one [[tool.torchwheel.spec]] per spec"
        )
    specs = tuple(_spec_table(number, raw, where) for number, raw in enumerate(raw_specs, 1))
    if not specs and generate is None:
        raise SettingsError(
            f"{where}: [tool.torchwheel] declares no spec; add a [[tool.torchwheel.spec]] table or generate_specs"
        )
    matrix = _matrix(table, root, where)
    abi, minimum = _abi(table, "[tool.torchwheel]", where, "full"), _string(table, "min_torch", where, None)
    if minimum is not None and not SERIES_PATTERN.fullmatch(minimum):
        raise SettingsError(f'{where}: [tool.torchwheel] min_torch = {minimum!r} is not major.minor; write e.g. "2.11"')
    if minimum is None and (abi == "stable" or any(s.torch_abi == "stable" for s in specs)):
        raise SettingsError(
            f"{where}: [tool.torchwheel] has stable-ABI specs but no min_torch, the oldest torch they load into; "
            'add min_torch = "2.11"'
        )
    version = _table_version(table, where)
    return ProjectConfig(
        name, env_prefix, package, specs, generate, matrix, root, where, version, abi or "full", minimum,
        _settings(table, where),
    )  # fmt: skip


def _settings(table: dict[str, Any], where: str) -> dict[str, Any]:
    """`[tool.torchwheel.settings]`: its keys checked here, its values where each is resolved
    (settings.py), so that a value given in the table or the environment is checked one way."""
    value = table.get("settings", {})
    if not isinstance(value, dict):
        raise SettingsError(
            f"{where}: [tool.torchwheel] settings = {shown(value)} is {kind_of(value)}; "
            "write a [tool.torchwheel.settings] table"
        )
    check_known_keys(value, TABLE_KEYS, "in [tool.torchwheel.settings]", where)
    return value


def _abi(table: dict[str, Any], label: str, where: str, default: TorchAbi | None) -> TorchAbi | None:
    value = table.get("torch_abi", default)
    if value is None:
        return None
    for abi in TORCH_ABIS:
        if value == abi:
            return abi
    raise SettingsError(
        f'{where}: {label} torch_abi = {shown(value)} is unknown; use "stable" or "full" (docs/config.md)'
    )


def _string(table: dict[str, Any], key: str, where: str, default: str | None) -> str | None:
    value = table.get(key, default)
    if value is not None and not isinstance(value, str):
        raise SettingsError(f"{where}: [tool.torchwheel] {key} = {shown(value)} is {kind_of(value)}, not a string")
    return value


def _strings(table: dict[str, Any], key: str, label: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SettingsError(f"{where}: {label} {key} = {shown(value)} must be a string or an array of strings")
    return tuple(value)


def _spec_table(number: int, raw: object, where: str) -> SpecTable:
    label = f"[[tool.torchwheel.spec]] number {number}"
    if not isinstance(raw, dict):
        raise SettingsError(f"{where}: {label} is {kind_of(raw)}, not a table")
    check_known_keys(raw, _SPEC_KEYS, f"in {label}", where)
    name = raw.get("name")
    if not isinstance(name, str):
        raise SettingsError(f'{where}: {label} has no name; add name = "<spec>" (it names the .so)')
    label = f"[[tool.torchwheel.spec]] {name!r}"
    value = raw.get("device", "cpu")
    device = next((d for d in DEVICES if d == value), None)
    if device is None:
        raise SettingsError(f"{where}: {label} device = {shown(value)} is unknown; use one of {', '.join(DEVICES)}")
    paths = {key: _strings(raw, key, label, where) for key in _PATH_KEYS}
    flags = {key: _strings(raw, key, label, where) for key in _FLAG_KEYS}
    return SpecTable(name, device, paths, flags, _strings(raw, "after", label, where), _abi(raw, label, where, None))


def _matrix(table: dict[str, Any], root: Path, where: str) -> Path | dict[str, Any] | None:
    value = table.get("matrix")
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, str):
        return root / value
    raise SettingsError(
        f"{where}: [tool.torchwheel] matrix = {shown(value)} is {kind_of(value)}; "
        'write a path (matrix = "ci/matrix.toml") or a [tool.torchwheel.matrix] table'
    )


def packaged_table(config: ProjectConfig) -> tuple[dict[str, Any], dict[str, Path]]:
    """What an installed package carries: the table with each glob resolved to the files it
    matched (paths relative to `_torchwheel/src/`), and those files by that relative path.

    Include dirs travel whole (their headers, found by suffix); the generated specs' function
    resolves its own paths in the installed package, so it travels as its name only."""
    files: dict[str, Path] = {}
    specs = []
    for table in config.specs:
        spec = config.spec_of(table)
        entry: dict[str, Any] = {
            "name": spec.name,
            "device": spec.device,
            "after": list(table.after),
            "torch_abi": spec.torch_abi,
        }
        for key in ("sources", "torch_sources"):
            entry[key] = [glob.escape(_carried(p, config.root, files)) for p in getattr(spec, key)]
        entry["include_dirs"] = []
        for directory in spec.include_dirs:
            entry["include_dirs"].append(glob.escape(_relative(directory, config.root)))
            for header in sorted(directory.rglob("*")):
                if header.is_file() and header.suffix in HEADER_SUFFIXES:
                    _carried(header, config.root, files)
        entry.update({key: list(getattr(spec, key)) for key in _FLAG_KEYS})
        specs.append(entry)
    data: dict[str, Any] = {"name": config.name, "env_prefix": config.env_prefix, "package": config.package}
    if config.min_torch is not None:
        data["min_torch"] = config.min_torch
    if specs:
        data["spec"] = specs
    if config.generate_specs:
        data["generate_specs"] = config.generate_specs
    return data, files


HEADER_SUFFIXES = frozenset({".h", ".hh", ".hpp", ".cuh", ".inc", ".inl"})


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        raise SpecError(
            f"{path} is outside the project's directory {root}; an installed package could not carry it: "
            "move it under the project"
        ) from None


def _carried(path: Path, root: Path, files: dict[str, Path]) -> str:
    relative = _relative(path, root)
    files[relative] = path
    return relative
