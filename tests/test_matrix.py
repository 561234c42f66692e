"""The matrix file names the cells; the CI workflow and the meta-package's extras follow it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from torchwheel.errors import SettingsError
from torchwheel.release.matrix import load_matrix, parse_matrix
from torchwheel.release.workflow import workflow_text

MATRIX = REPO / "ci" / "matrix.toml"


def torchwheel(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torchwheel", *args], cwd=REPO, capture_output=True, text=True)


def test_minfers_cells_are_one_per_accelerator_that_has_a_torch_from_its_minimum_on() -> None:
    matrix = load_matrix(MATRIX)
    assert [c.id for c in matrix.cells] == ["cpu", "cu128", "cu130"]
    assert dict(matrix.excluded) == {
        "cu126": "no torch series of the matrix is in its range and at least the stable minimum 2.11"
    }


def test_a_cell_knows_its_torch_cuda_archs_and_distribution_name() -> None:
    cell = load_matrix(MATRIX).cell("cu130")
    assert (cell.distribution, cell.torch_version, cell.cuda, cell.torch_abi) == (
        "minfer-cu130",
        "2.14.1",
        "13.0",
        "stable",
    )
    assert cell.arch_list == "7.5;8.0;8.6;8.9;9.0;10.0;12.0+PTX"
    assert cell.devices == ("cpu", "cuda")


def test_the_name_template_serves_another_project() -> None:
    data = {
        "project": {"name": "flashinfer"},
        "torch": {"2.5": "2.5.1"},
        "accelerators": {"cu124": {"cuda": "12.4", "arch_list": "8.0;9.0a"}},
    }
    (cell,) = parse_matrix(data).cells
    assert cell.distribution == "flashinfer-cu124-torch25"


def test_matrix_ci_prints_one_github_job_per_cell() -> None:
    result = torchwheel("matrix", "ci")
    include = json.loads(result.stdout)["include"]
    assert [job["id"] for job in include] == [c.id for c in load_matrix(MATRIX).cells]


def test_the_checked_in_workflow_is_what_the_matrix_generates() -> None:
    checked_in = (REPO / "ci" / "workflows" / "wheels.yml").read_text()
    assert checked_in == workflow_text(load_matrix(MATRIX), "ci/matrix.toml"), (
        "ci/workflows/wheels.yml drifted from ci/matrix.toml: run "
        "`torchwheel matrix workflow > ci/workflows/wheels.yml`"
    )


def test_the_meta_package_has_one_extra_per_cell() -> None:
    """minfer runs the drift check any adopting project can run in its own CI."""
    result = subprocess.run(
        [sys.executable, "-m", "torchwheel", "matrix", "extras", "--check"],
        cwd=REPO / "packages" / "minfer",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_extras_drift_names_each_missing_wrong_and_stale_extra(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "tinyext"\nversion = "1.0"\n'
        '[project.optional-dependencies]\ndev = ["pytest"]\ncpu-torch213 = ["tinyext-cpu-torch213==0.9"]\n'
        'cpu-torch27 = ["tinyext-cpu-torch27==1.0"]\n'
        '[tool.torchwheel]\ngenerate_specs = "x:y"\n'
        '[tool.torchwheel.matrix.torch]\n"2.13" = "2.13.0"\n"2.14" = "2.14.1"\n'
        "[tool.torchwheel.matrix.accelerators.cpu]\n"
    )
    run = [sys.executable, "-m", "torchwheel", "matrix", "extras"]
    printed = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=120).stdout
    assert 'cpu-torch214 = ["tinyext-cpu-torch214==1.0"]' in printed
    result = subprocess.run([*run, "--check"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    problems = [line.split(": ", 2)[2] for line in result.stderr.splitlines()]
    assert problems == [
        "extra 'cpu-torch214' is missing; add cpu-torch214 = [\"tinyext-cpu-torch214==1.0\"]",
        'extra \'cpu-torch213\' is ["tinyext-cpu-torch213==0.9"], the matrix gives ["tinyext-cpu-torch213==1.0"]',
        "extra 'cpu-torch27' names no cell of the matrix; remove it",
    ]


def test_an_unknown_cell_is_one_line_naming_the_known_ones() -> None:
    result = torchwheel("wheel", "--cell", "cu999", "--out", "/nonexistent")
    assert result.returncode == 2  # a usage error
    assert result.stderr == "torchwheel: error: cell 'cu999' is not in the matrix; pick one of cpu, cu128, cu130\n"
    assert not Path("/nonexistent").exists()


def test_an_excluded_cell_says_why() -> None:
    with pytest.raises(SettingsError, match=r"cell 'cu126' is excluded by the matrix \(no torch series .* 2.11\)"):
        load_matrix(MATRIX).cell("cu126")


BASE = {"project": {"name": "p"}, "torch": {"2.14": "2.14.1"}, "accelerators": {"cpu": {}}}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"project": {}}, r"\[project\] name is missing; add name ="),
        ({"torch": {"2.14": "2.13.0"}}, r"\[torch\] '2.14' = '2.13.0' is not a 2.14 release"),
        ({"torch": {"2.14": "latest"}}, r"\[torch\] '2.14' = 'latest' is not a version"),
        ({"accelerators": {"cu130": {"arch_list": "9.0"}}}, r"\[accelerators.cu130\] has no cuda; add cuda ="),
        ({"accelerators": {"cu130": {"cuda": "13.0"}}}, r"\[accelerators.cu130\] has no arch_list"),
        ({"accelerators": {"cu130": {"cuda": "13.0", "arch_list": "9.9z"}}}, r"CUDA arch '9.9z' is not understood"),
        (
            {"exclude": [{"accel": "rocm", "torch": "2.14"}]},
            r"\[\[exclude\]\] accel = 'rocm', torch = '2.14' names no cell",
        ),
        (
            {"project": {"name": "p", "distribution": "{name}-{gpu}"}},
            r"distribution = '\{name\}-\{gpu\}' uses unknown field",
        ),
        ({"project": {"name": "p", "max_wheel_mb": 0}}, r"max_wheel_mb = 0 must be a positive number of MB"),
    ],
)
def test_a_malformed_matrix_is_one_line(change: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as caught:
        parse_matrix({**BASE, **change})
    assert "\n" not in str(caught.value)


def test_a_missing_matrix_file_is_one_line(tmp_path: Path) -> None:
    result = torchwheel("matrix", "list", "--matrix", str(tmp_path / "nope.toml"))
    assert result.returncode == 2  # a usage error
    missing = tmp_path / "nope.toml"
    assert (
        result.stderr == f"torchwheel: error: matrix file {missing} does not exist; pass --matrix PATH of a TOML file\n"
    )


def test_the_wheel_command_reads_max_jobs_and_refuses_a_bad_one(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "torchwheel", "wheel", "--cell", "cpu", "--python", sys.executable,
         "--out", str(tmp_path / "dist")],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "MAX_JOBS": "zero"},
    )  # fmt: skip
    assert result.returncode == 2  # a usage error
    assert result.stderr == "torchwheel: error: MAX_JOBS='zero' is not a positive whole number; use e.g. MAX_JOBS=4\n"
    assert not (tmp_path / "dist").exists()


def test_each_accelerators_torch_comes_from_torchs_own_index_of_that_name() -> None:
    matrix = load_matrix(MATRIX)
    assert {c.id: c.torch_index for c in matrix.cells} == {
        "cpu": "https://download.pytorch.org/whl/cpu",
        "cu128": "https://download.pytorch.org/whl/cu128",
        "cu130": "https://download.pytorch.org/whl/cu130",
    }


def test_a_mirror_replaces_an_accelerators_torch_index() -> None:
    (cell,) = parse_matrix({**BASE, "accelerators": {"cpu": {"torch_index": "https://mirror.example/whl/cpu/"}}}).cells
    assert cell.torch_index == "https://mirror.example/whl/cpu"


@pytest.mark.parametrize("url", ["download.pytorch.org/whl/cpu", "https://a b", 'https://x"y', 3])
def test_a_torch_index_that_is_no_url_is_one_line(url: object) -> None:
    with pytest.raises(
        SettingsError, match=r"\[accelerators.cpu\] torch_index = .* (is not a package index URL|not a string)"
    ):
        parse_matrix({**BASE, "accelerators": {"cpu": {"torch_index": url}}})


def test_the_github_matrix_has_no_null() -> None:
    """GitHub's schema takes a string for each value of a matrix entry: a cpu cell's is ""."""
    for entry in load_matrix(MATRIX).github_matrix()["include"]:
        assert all(isinstance(v, str) for v in entry.values()), entry
