"""The build matrix (`ci/matrix.toml`): accelerators x torch versions, minus exclusions.

Everything else that CI needs (the GitHub Actions matrix, the workflow file, the cibuildwheel
configuration, the meta-package's extras) is generated from this one file, so they cannot drift.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from string import Formatter
from typing import Any, Literal

from packaging.version import InvalidVersion, Version

from torchwheel.arch import format_arch_list, parse_arch_list
from torchwheel.errors import SettingsError
from torchwheel.files import read_toml
from torchwheel.spec import TORCH_ABIS, TorchAbi
from torchwheel.tables import check_known_keys, kind_of, shown
from torchwheel.versions import parse_version

DEFAULT_TEMPLATE = "{name}-{accel}-torch{torch}"
# A stable-ABI cell serves every torch from its minimum on: one per accelerator, no torch in its name.
DEFAULT_STABLE_TEMPLATE = "{name}-{accel}"

# Where an accelerator's torch comes from when the matrix does not say: torch's own index of
# that build (`.../whl/cpu`, `.../whl/cu128`). PyPI's `torch` is one CUDA build per release
# (whichever CUDA torch chose for it), so a plain `pip install torch==X` gives a cpu cell a CUDA
# torch and a cu126 cell a torch of another CUDA.
DEFAULT_TORCH_INDEX = "https://download.pytorch.org/whl/{accel}"
# What an index URL may start with: a mirror is https (or http inside a network), or a local
# directory in the simple-API layout (file://), as pip's --index-url takes them.
_INDEX_SCHEMES = ("https://", "http://", "file://")

# How a cell's CUDA specs are laid out in wheels: all in the cell's wheel, or one wheel per GPU
# arch family (for cells whose wheel would exceed max_wheel_mb; see cells.py).
Split = Literal["auto", "arch-family"]


@dataclass(frozen=True)
class VariantCell:
    """One accelerator x torch pair: one variant wheel."""

    project: str
    accel: str  # "cpu", "cu130", ...
    torch_series: str  # "2.14"
    torch_version: str  # "2.14.1": what the cell builds against
    cuda: str | None  # "13.0"; None for cpu
    arch_list: str | None  # normalised, e.g. "7.5;8.0;9.0;12.0+PTX"
    distribution: str  # "minfer-cu130-torch214"
    torch_index: str  # the package index the cell's torch is installed from (pip --index-url)
    split: Split = "auto"
    # "full": the project's full-ABI specs, for this torch series only. "stable": its stable-ABI
    # specs, built against this (the newest) series of the accelerator, for every torch from their
    # minimum on; the cell is the accelerator's alone (`cu130`).
    torch_abi: TorchAbi = "full"
    min_torch: str | None = None  # a stable cell's: the oldest torch its wheel serves

    @property
    def torch_range(self) -> str:
        """The torch its wheel serves, as `matrix list` shows it."""
        if self.torch_abi == "stable":
            return f"torch>={self.min_torch or '?'} (built with {self.torch_version})"
        return f"torch {self.torch_version}"

    @property
    def id(self) -> str:
        if self.torch_abi == "stable":
            return self.accel
        return f"{self.accel}-torch{self.torch_series.replace('.', '')}"

    @property
    def devices(self) -> tuple[str, ...]:
        # A CUDA torch runs CPU ops too, so a CUDA cell's wheel carries the CPU specs as well.
        return ("cpu",) if self.cuda is None else ("cpu", "cuda")

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "accel": self.accel,
            "torch": self.torch_series,
            "torch_version": self.torch_version,
            "cuda": self.cuda,
            "arch_list": self.arch_list,
            "distribution": self.distribution,
            "torch_abi": self.torch_abi,
            "torch_index": self.torch_index,
        }


@dataclass(frozen=True)
class Matrix:
    project: str
    max_wheel_bytes: int
    cells: tuple[VariantCell, ...]
    excluded: tuple[tuple[str, str], ...]  # (cell id, reason)

    def cell(self, cell_id: str) -> VariantCell:
        for cell in self.cells:
            if cell.id == cell_id:
                return cell
        reason = dict(self.excluded).get(cell_id)
        known = ", ".join(c.id for c in self.cells)
        if reason:
            raise SettingsError(f"cell {cell_id!r} is excluded by the matrix ({reason}); pick one of {known}")
        raise SettingsError(f"cell {cell_id!r} is not in the matrix; pick one of {known}")

    def github_matrix(self) -> dict[str, list[dict[str, str]]]:
        """The `strategy.matrix` of the wheel-building workflow: one job per cell. Every value is
        a string, "" where a cell has none (a cpu cell's cuda): GitHub's schema for a matrix
        entry takes no null, and `matrix.cuda != ''` reads plainly in a step's condition."""
        return {"include": [{k: "" if v is None else str(v) for k, v in c.as_dict().items()} for c in self.cells]}


def _version(text: str, field: str, where: str) -> Version:
    try:
        return parse_version(text)
    except InvalidVersion:
        raise SettingsError(f'{where}: {field} = {text!r} is not a version; write it like "2.14"') from None


def load_matrix(path: Path) -> Matrix:
    return parse_matrix(read_toml(path, "matrix file", "pass --matrix PATH of a TOML file"), str(path))


# The keys each table may hold: a misspelt one (max-torch) would otherwise be ignored in silence
# and build cells nobody asked for.
_TOP_KEYS = frozenset({"project", "torch", "accelerators", "exclude"})
_PROJECT_KEYS = frozenset({"name", "distribution", "stable_distribution", "abis", "min_torch", "max_wheel_mb"})
_ACCELERATOR_KEYS = frozenset({"cuda", "arch_list", "min_torch", "max_torch", "split", "torch_index"})
_EXCLUDE_KEYS = frozenset({"accel", "torch", "reason"})
_TEMPLATE_FIELDS = ("name", "accel", "torch")
# Names as cell ids, job names and wheel names use them: "cpu", "cu130", "rocm63".
_ACCEL_NAME = re.compile(r"[a-z][a-z0-9]*")
_SERIES = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
_CUDA = re.compile(r"[1-9][0-9]*\.[0-9]+")
# PEP 508's rule for a distribution name.
_DISTRIBUTION = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
# Far beyond any index's limit, and small enough that every size computed from it stays exact.
_MAX_WHEEL_MB = 1_000_000


@dataclass(frozen=True)
class _ProjectTable:
    name: str
    template: str
    stable_template: str
    abis: tuple[TorchAbi, ...]  # which kinds of cell the matrix has
    max_wheel_bytes: int
    min_torch: Version | None  # the stable specs' minimum: no older series can build a stable cell

    def distribution(self, accel: str, torch_series: str) -> str:
        return self.template.format(name=self.name, accel=accel, torch=torch_series.replace(".", ""))

    def stable_distribution(self, accel: str) -> str:
        return self.stable_template.format(name=self.name, accel=accel)


@dataclass(frozen=True)
class _Accelerator:
    accel: str
    cuda: str | None
    arch_list: str | None
    low: Version | None
    high: Version | None
    split: Split
    torch_index: str


def parse_matrix(data: dict[str, Any], where: str = "matrix") -> Matrix:
    check_known_keys(data, _TOP_KEYS, "at the top level", where)
    project = _project_table(data, where)
    series = _torch_series(data, where)
    accelerators = _accelerators(data, where)
    excluded_pairs = _exclusions(data, accelerators, series, where)
    cells: list[VariantCell] = []
    excluded: list[tuple[str, str]] = []
    if "stable" in project.abis:
        _stable_cells(project, accelerators, series, excluded_pairs, cells, excluded)
    for accelerator in accelerators.values() if "full" in project.abis else ():
        for torch_series, torch_version in series.items():
            cell = VariantCell(
                project=project.name,
                accel=accelerator.accel,
                torch_series=torch_series,
                torch_version=torch_version,
                cuda=accelerator.cuda,
                arch_list=accelerator.arch_list,
                distribution=project.distribution(accelerator.accel, torch_series),
                torch_index=accelerator.torch_index,
                split=accelerator.split,
            )
            reason = excluded_pairs.get((accelerator.accel, torch_series)) or _out_of_range(accelerator, torch_series)
            if reason:
                excluded.append((cell.id, reason))
            else:
                cells.append(cell)
    _distinct_distributions(cells, project.template, where)
    return Matrix(project.name, project.max_wheel_bytes, tuple(cells), tuple(excluded))


def _stable_cells(
    project: _ProjectTable,
    accelerators: dict[str, _Accelerator],
    series: dict[str, str],
    excluded_pairs: dict[tuple[str, str], str],
    cells: list[VariantCell],
    excluded: list[tuple[str, str]],
) -> None:
    """One stable cell per accelerator, built against the newest torch series it has (a newer
    torch's headers, with the minimum as target, may hold fixes; they never raise the minimum)."""
    for accelerator in accelerators.values():
        usable = [
            s
            for s in series
            if not excluded_pairs.get((accelerator.accel, s))
            and not _out_of_range(accelerator, s)
            and (project.min_torch is None or parse_version(s) >= project.min_torch)
        ]
        if not usable:
            floor = f" and at least the stable minimum {project.min_torch}" if project.min_torch else ""
            excluded.append((accelerator.accel, f"no torch series of the matrix is in its range{floor}"))
            continue
        newest = max(usable, key=lambda s: tuple(int(p) for p in s.split(".")))
        cells.append(
            VariantCell(
                project=project.name,
                accel=accelerator.accel,
                torch_series=newest,
                torch_version=series[newest],
                cuda=accelerator.cuda,
                arch_list=accelerator.arch_list,
                distribution=project.stable_distribution(accelerator.accel),
                torch_index=accelerator.torch_index,
                split=accelerator.split,
                torch_abi="stable",
                min_torch=None if project.min_torch is None else str(project.min_torch),
            )
        )


def _table(data: dict[str, Any], key: str, where: str, example: str) -> dict[str, Any]:
    """`data[key]` if it is a table, else one line naming what stands there instead."""
    value = data[key]
    if not isinstance(value, dict):
        raise SettingsError(f"{where}: {key} = {shown(value)} is {kind_of(value)}, not a table; write {example}")
    return value


def _project_table(data: dict[str, Any], where: str) -> _ProjectTable:
    if "project" not in data or "name" not in _table(data, "project", where, '[project] name = "<project>"'):
        raise SettingsError(f'{where}: [project] name is missing; add name = "<project>"')
    table = data["project"]
    check_known_keys(table, _PROJECT_KEYS, "in [project]", where)
    name = table["name"]
    if not isinstance(name, str) or not _DISTRIBUTION.fullmatch(name):
        raise SettingsError(
            f"{where}: [project] name = {shown(name)} is not a project name; write the torchwheel project's "
            'name as a string of letters, digits, "-", "_" and ".", e.g. name = "minfer"'
        )
    template = _template(table.get("distribution", DEFAULT_TEMPLATE), name, where, "distribution")
    stable = _template(table.get("stable_distribution", DEFAULT_STABLE_TEMPLATE), name, where, "stable_distribution")
    max_bytes = _max_wheel_bytes(table.get("max_wheel_mb", 100), where)
    return _ProjectTable(name, template, stable, _abis(table, where), max_bytes, _min_torch(table, where))


def _min_torch(table: dict[str, Any], where: str) -> Version | None:
    minimum = table.get("min_torch")
    if minimum is None:
        return None
    if not isinstance(minimum, str) or not _SERIES.fullmatch(minimum):
        raise SettingsError(f'{where}: [project] min_torch = {shown(minimum)} is not major.minor; write e.g. "2.11"')
    return _version(minimum, "[project] min_torch", where)


def _abis(table: dict[str, Any], where: str) -> tuple[TorchAbi, ...]:
    value = table.get("abis", ["full"])
    if not isinstance(value, list) or not value or any(v not in TORCH_ABIS for v in value):
        raise SettingsError(
            f'{where}: [project] abis = {shown(value)} must list "full" (a cell per accelerator and torch), '
            '"stable" (a cell per accelerator) or both; write e.g. abis = ["stable"]'
        )
    return tuple(abi for abi in TORCH_ABIS if abi in value)


def _template(template: object, name: str, where: str, key: str) -> str:
    """A distribution-name template, checked field by field before it is ever formatted. A
    stable cell's name has no torch in it: it serves them all."""
    allowed = _TEMPLATE_FIELDS if key == "distribution" else ("name", "accel")
    example = DEFAULT_TEMPLATE if key == "distribution" else DEFAULT_STABLE_TEMPLATE
    remedy = f"use only {', '.join('{' + f + '}' for f in allowed)} in it, e.g. {example!r}"
    label = f"{where}: [project] {key} = {shown(template)}"
    if not isinstance(template, str):
        raise SettingsError(f"{label} is {kind_of(template)}, not a string; {remedy}")
    try:
        fields = [(f, spec, conversion) for _, f, spec, conversion in Formatter().parse(template) if f is not None]
    except ValueError as error:
        raise SettingsError(f"{label} is not a name template ({error}); {remedy}") from None
    for field, spec, conversion in fields:
        if field not in allowed:
            raise SettingsError(f"{label} uses unknown field {{{field}}}; {remedy}")
        if spec or conversion:
            written = f"!{conversion}" if conversion else f":{spec}"
            raise SettingsError(f"{label} formats {{{field}}} with {written!r}; write plain {{{field}}}")
    sample = template.format(name=name, accel="cpu", torch="214")
    if not _DISTRIBUTION.fullmatch(sample):
        raise SettingsError(
            f"{label} gives {shown(sample)}, not a distribution name; use only letters, digits, "
            '"-", "_" and "." around the fields'
        )
    return template


def _max_wheel_bytes(value: object, where: str) -> int:
    # bool is an int to Python, and inf and nan are floats: each would pass a plain number check.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= _MAX_WHEEL_MB:
        raise SettingsError(
            f"{where}: [project] max_wheel_mb = {shown(value)} must be a positive number of MB, at most "
            f"{_MAX_WHEEL_MB}; write e.g. max_wheel_mb = 100"
        )
    return int(value * 1_000_000)


def _torch_series(data: dict[str, Any], where: str) -> dict[str, str]:
    table = _table(data, "torch", where, '[torch] "2.14" = "2.14.1"') if "torch" in data else {}
    if not table:
        raise SettingsError(f'{where}: [torch] is empty; map each series to a version, e.g. "2.14" = "2.14.1"')
    return {name: _pinned(name, pinned, where) for name, pinned in table.items()}


def _pinned(name: str, pinned: object, where: str) -> str:
    """The exact version a series' cells build against, checked to belong to the series."""
    if not _SERIES.fullmatch(name):
        raise SettingsError(f'{where}: [torch] {name!r} is not a major.minor series; write it like "2.14" = "2.14.1"')
    if not isinstance(pinned, str):
        raise SettingsError(
            f"{where}: [torch] {name!r} = {shown(pinned)} is {kind_of(pinned)}, not a version; "
            f'write "{name}" = "{name}.0"'
        )
    if _version(pinned, f"[torch] {name!r}", where).release[:2] != _version(name, "[torch] series", where).release[:2]:
        raise SettingsError(f"{where}: [torch] {name!r} = {pinned!r} is not a {name} release; fix one of them")
    return pinned


def _accelerators(data: dict[str, Any], where: str) -> dict[str, _Accelerator]:
    table = _table(data, "accelerators", where, "[accelerators.cpu]") if "accelerators" in data else {}
    if not table:
        raise SettingsError(f"{where}: [accelerators] is empty; add [accelerators.cpu] or [accelerators.cu130]")
    return {accel: _accelerator(accel, value, where) for accel, value in table.items()}


def _exclusions(
    data: dict[str, Any], accelerators: dict[str, _Accelerator], series: dict[str, str], where: str
) -> dict[tuple[str, str], str]:
    rules = data.get("exclude", [])
    if not isinstance(rules, list):
        raise SettingsError(
            f"{where}: exclude = {shown(rules)} is {kind_of(rules)}, not an array of tables; write one "
            "[[exclude]] block with accel, torch and reason per cell to leave out"
        )
    pairs: dict[tuple[str, str], str] = {}
    for number, rule in enumerate(rules, 1):
        accel, torch, reason = _exclusion(number, rule, where)
        if accel not in accelerators or torch not in series:
            raise SettingsError(
                f"{where}: [[exclude]] accel = {accel!r}, torch = {torch!r} names no cell; "
                "fix the names or remove the rule"
            )
        pairs[accel, torch] = reason
    return pairs


def _exclusion(number: int, rule: object, where: str) -> tuple[str, str, str]:
    label = f"{where}: [[exclude]] number {number}"
    if not isinstance(rule, dict):
        raise SettingsError(
            f"{label} = {shown(rule)} is {kind_of(rule)}, not a table; "
            "write it as [[exclude]] with accel, torch, reason"
        )
    check_known_keys(rule, _EXCLUDE_KEYS, f"in [[exclude]] number {number}", where)
    values: list[str] = []
    for key in ("accel", "torch", "reason"):
        value = rule.get(key, "excluded" if key == "reason" else None)
        if not isinstance(value, str):
            found = "is missing" if value is None else f"= {shown(value)} is {kind_of(value)}, not a string"
            raise SettingsError(f'{label}: {key} {found}; write e.g. accel = "cu128", torch = "2.8", reason = "..."')
        values.append(value)
    accel, torch, reason = values
    return accel, torch, reason


def _accelerator(accel: str, table: object, where: str) -> _Accelerator:
    if not _ACCEL_NAME.fullmatch(accel):
        raise SettingsError(
            f"{where}: [accelerators] {accel!r} is not an accelerator name; "
            'use lowercase letters and digits, e.g. "cu130"'
        )
    if not isinstance(table, dict):
        raise SettingsError(
            f"{where}: [accelerators] {accel} = {shown(table)} is {kind_of(table)}, not a table; "
            f"write [accelerators.{accel}] with its keys under it"
        )
    check_known_keys(table, _ACCELERATOR_KEYS, f"in [accelerators.{accel}]", where)
    cuda, arch_list = _cuda(accel, table, where)
    split = table.get("split", "auto")
    if split not in ("auto", "arch-family"):
        raise SettingsError(
            f'{where}: [accelerators.{accel}] split = {shown(split)} is unknown; use "auto" or "arch-family"'
        )
    low, high = (_torch_bound(accel, table, key, where) for key in ("min_torch", "max_torch"))
    return _Accelerator(accel, cuda, arch_list, low, high, split, _torch_index(accel, table, where))


def _torch_index(accel: str, table: dict[str, Any], where: str) -> str:
    """The accelerator's torch index: its `torch_index`, else torch's own index of that name."""
    default = DEFAULT_TORCH_INDEX.format(accel=accel)
    url = _string(accel, table, "torch_index", f'"{default}"', where)
    if url is None:
        return default
    # Whitespace would split the URL in a shell step; a quote or `$` would end or expand it.
    if not url.startswith(_INDEX_SCHEMES) or any(c.isspace() or c in "\"'$`\\" for c in url):
        raise SettingsError(
            f"{where}: [accelerators.{accel}] torch_index = {url!r} is not a package index URL; write an "
            f'https:// (or file://) URL of a simple index with no spaces or quotes, e.g. torch_index = "{default}"'
        )
    return url.rstrip("/")


def _string(accel: str, table: dict[str, Any], key: str, example: str, where: str) -> str | None:
    """A string value of an accelerator's table, or None where it is absent. TOML's numbers will
    not do: `cuda = 12.10` and `max_torch = 2.10` would read as 12.1 and 2.1."""
    value = table.get(key)
    if value is not None and not isinstance(value, str):
        raise SettingsError(
            f"{where}: [accelerators.{accel}] {key} = {shown(value)} is {kind_of(value)}, not a string; "
            f"write {key} = {example}"
        )
    return value


def _cuda(accel: str, table: dict[str, Any], where: str) -> tuple[str | None, str | None]:
    """The accelerator's CUDA version and normalised arch list; both None for cpu."""
    cuda = _string(accel, table, "cuda", '"13.0"', where)
    arch_text = _string(accel, table, "arch_list", '"8.0;9.0"', where)
    if accel == "cpu":
        if cuda is not None or arch_text is not None:
            key = "cuda" if cuda is not None else "arch_list"
            raise SettingsError(f"{where}: [accelerators.cpu] sets {key}; the cpu accelerator has none, remove it")
        return None, None
    if cuda is None:
        raise SettingsError(f'{where}: [accelerators.{accel}] has no cuda; add cuda = "13.0"')
    if not _CUDA.fullmatch(cuda):
        raise SettingsError(f'{where}: [accelerators.{accel}] cuda = {cuda!r} is not major.minor; write cuda = "13.0"')
    if arch_text is None:
        raise SettingsError(f'{where}: [accelerators.{accel}] has no arch_list; add e.g. "8.0;9.0"')
    try:
        return cuda, format_arch_list(parse_arch_list(arch_text))
    except SettingsError as error:
        raise SettingsError(f"{where}: [accelerators.{accel}] arch_list: {error}") from None


def _torch_bound(accel: str, table: dict[str, Any], key: str, where: str) -> Version | None:
    text = _string(accel, table, key, '"2.9"', where)
    return None if text is None else _version(text, f"[accelerators.{accel}] {key}", where)


def _distinct_distributions(cells: list[VariantCell], template: str, where: str) -> None:
    seen: dict[str, str] = {}
    for cell in cells:
        if (other := seen.setdefault(cell.distribution, cell.id)) != cell.id:
            raise SettingsError(
                f"{where}: [project] distribution = {template!r} gives {cell.distribution!r} to both {other} "
                f"and {cell.id}; put {{accel}} and {{torch}} in it"
            )


def _out_of_range(accelerator: _Accelerator, torch_series: str) -> str | None:
    version = parse_version(torch_series)
    if accelerator.low is not None and version < accelerator.low:
        return f"{accelerator.accel} needs torch >= {accelerator.low}"
    if accelerator.high is not None and version > accelerator.high:
        return f"{accelerator.accel} is built for torch <= {accelerator.high} only"
    return None


def cell_extras(matrix: Matrix, version: str) -> dict[str, list[str]]:
    """The meta-package's extras: one per cell, pulling that cell's variant at the same version."""
    return {cell.id: [f"{cell.distribution}=={version}"] for cell in matrix.cells}


def extras_drift(matrix: Matrix, version: str, declared: dict[str, Any]) -> list[str]:
    """Where a pyproject's `[project.optional-dependencies]` differs from the matrix's extras; the
    project's other extras (`dev`, `test`) are its own and not compared."""
    expected = cell_extras(matrix, version)
    drift = [f"extra {cell!r} is missing; add {cell} = {json.dumps(pins)}" for cell, pins in expected.items()
             if cell not in declared]  # fmt: skip
    drift += [f"extra {cell!r} is {json.dumps(declared[cell])}, the matrix gives {json.dumps(pins)}"
              for cell, pins in expected.items() if cell in declared and declared[cell] != pins]  # fmt: skip
    cell_like = re.compile(r"[a-z][a-z0-9]*-torch[0-9]+")
    drift += [f"extra {name!r} names no cell of the matrix; remove it" for name in declared
              if cell_like.fullmatch(name) and name not in expected]  # fmt: skip
    return drift


def matrix_json(matrix: Matrix) -> str:
    return json.dumps(matrix.github_matrix(), sort_keys=True)
