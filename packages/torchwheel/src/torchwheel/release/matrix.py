"""The build matrix (`ci/matrix.toml`): accelerators x torch versions, minus exclusions.

Everything else that CI needs (the GitHub Actions matrix, the workflow file, the cibuildwheel
configuration, the meta-package's extras) is generated from this one file, so they cannot drift.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from packaging.version import InvalidVersion, Version

from torchwheel.arch import format_arch_list, parse_arch_list
from torchwheel.errors import SettingsError
from torchwheel.versions import parse_version

DEFAULT_TEMPLATE = "{name}-{accel}-torch{torch}"

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
    split: Split = "auto"

    @property
    def id(self) -> str:
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

    def github_matrix(self) -> dict[str, list[dict[str, object]]]:
        """The `strategy.matrix` of the wheel-building workflow: one job per cell."""
        return {"include": [cell.as_dict() for cell in self.cells]}


def _version(text: object, where: str) -> Version:
    try:
        return parse_version(str(text))
    except InvalidVersion:
        raise SettingsError(f'{where} = {text!r} is not a version; write it like "2.14"') from None


def load_matrix(path: Path) -> Matrix:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SettingsError(f"matrix file {path} does not exist; pass --matrix PATH") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"matrix file {path} is not valid TOML ({error}); fix its syntax") from None
    return parse_matrix(data, str(path))


@dataclass(frozen=True)
class _ProjectTable:
    name: str
    template: str
    max_wheel_bytes: int

    def distribution(self, accel: str, torch_series: str) -> str:
        return self.template.format(name=self.name, accel=accel, torch=torch_series.replace(".", ""))


@dataclass(frozen=True)
class _Accelerator:
    accel: str
    cuda: str | None
    arch_list: str | None
    low: Version | None
    high: Version | None
    split: Split


def parse_matrix(data: dict[str, Any], where: str = "matrix") -> Matrix:
    project = _project_table(data, where)
    series = _torch_series(data, where)
    accelerators = data.get("accelerators")
    if not isinstance(accelerators, dict) or not accelerators:
        raise SettingsError(f"{where}: [accelerators] is empty; add [accelerators.cpu] or [accelerators.cu130]")
    excluded_pairs = _exclusions(data, accelerators, series, where)
    cells, excluded = [], []
    for accel, table in accelerators.items():
        accelerator = _accelerator(accel, table, where)
        for torch_series, torch_version in series.items():
            cell = VariantCell(
                project=project.name,
                accel=accel,
                torch_series=torch_series,
                torch_version=torch_version,
                cuda=accelerator.cuda,
                arch_list=accelerator.arch_list,
                distribution=project.distribution(accel, torch_series),
                split=accelerator.split,
            )
            reason = excluded_pairs.get((accel, torch_series)) or _out_of_range(accelerator, torch_series)
            if reason:
                excluded.append((cell.id, reason))
            else:
                cells.append(cell)
    return Matrix(project.name, project.max_wheel_bytes, tuple(cells), tuple(excluded))


def _project_table(data: dict[str, Any], where: str) -> _ProjectTable:
    table = data.get("project")
    if not isinstance(table, dict) or not isinstance(table.get("name"), str):
        raise SettingsError(f'{where}: [project] name is missing; add name = "<project>"')
    template = table.get("distribution", DEFAULT_TEMPLATE)
    try:
        template.format(name="x", accel="cpu", torch="214")
    except (KeyError, IndexError, AttributeError) as error:
        raise SettingsError(
            f"{where}: [project] distribution = {template!r} uses unknown field {error}; "
            "use {name}, {accel} and {torch}"
        ) from None
    max_mb = table.get("max_wheel_mb", 100)
    if not isinstance(max_mb, (int, float)) or max_mb <= 0:
        raise SettingsError(f"{where}: [project] max_wheel_mb = {max_mb!r} must be a positive number of MB")
    return _ProjectTable(table["name"], template, int(max_mb * 1_000_000))


def _torch_series(data: dict[str, Any], where: str) -> dict[str, str]:
    table = data.get("torch")
    if not isinstance(table, dict) or not table:
        raise SettingsError(f'{where}: [torch] is empty; map each series to a version, e.g. "2.14" = "2.14.1"')
    series: dict[str, str] = {}
    for name, pinned in table.items():
        if _version(pinned, f"[torch] {name!r}").release[:2] != _version(name, "[torch] series").release[:2]:
            raise SettingsError(f"{where}: [torch] {name!r} = {pinned!r} is not a {name} release; fix one of them")
        series[name] = str(pinned)
    return series


def _exclusions(
    data: dict[str, Any], accelerators: dict[str, Any], series: dict[str, str], where: str
) -> dict[tuple[str, str], str]:
    pairs: dict[tuple[str, str], str] = {}
    for rule in data.get("exclude", []):
        key = (str(rule.get("accel")), str(rule.get("torch")))
        if key[0] not in accelerators or key[1] not in series:
            raise SettingsError(
                f"{where}: [[exclude]] accel = {key[0]!r}, torch = {key[1]!r} names no cell; "
                "fix the names or remove the rule"
            )
        pairs[key] = str(rule.get("reason", "excluded"))
    return pairs


def _accelerator(accel: str, table: dict[str, Any], where: str) -> _Accelerator:
    cuda = table.get("cuda")
    arch_list = None
    if accel == "cpu" or cuda is None:
        if accel != "cpu":
            raise SettingsError(f'{where}: [accelerators.{accel}] has no cuda; add cuda = "13.0"')
    else:
        if "arch_list" not in table:
            raise SettingsError(f'{where}: [accelerators.{accel}] has no arch_list; add e.g. "8.0;9.0"')
        arch_list = format_arch_list(parse_arch_list(str(table["arch_list"])))
    split = table.get("split", "auto")
    if split not in ("auto", "arch-family"):
        raise SettingsError(
            f'{where}: [accelerators.{accel}] split = {split!r} is unknown; use "auto" or "arch-family"'
        )
    low = _version(table["min_torch"], f"[accelerators.{accel}] min_torch") if "min_torch" in table else None
    high = _version(table["max_torch"], f"[accelerators.{accel}] max_torch") if "max_torch" in table else None
    return _Accelerator(accel, str(cuda) if cuda is not None else None, arch_list, low, high, split)


def _out_of_range(accelerator: _Accelerator, torch_series: str) -> str | None:
    version = parse_version(torch_series)
    if accelerator.low is not None and version < accelerator.low:
        return f"{accelerator.accel} needs torch >= {accelerator.low}"
    if accelerator.high is not None and version > accelerator.high:
        return f"{accelerator.accel} is built for torch <= {accelerator.high} only"
    return None


def matrix_json(matrix: Matrix) -> str:
    return json.dumps(matrix.github_matrix(), sort_keys=True)
