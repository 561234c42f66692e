"""`[tool.torchwheel]` (docs/config.md): defaults, load order, and one line for each mistake."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import isolated_env
from torchwheel.config import packaged_table, read_packaged, read_pyproject
from torchwheel.errors import SettingsError, SpecError

GOOD = """\
[project]
name = "my-ext"
version = "1.2.3"

[tool.torchwheel]

[[tool.torchwheel.spec]]
name = "my_cpu"
torch_sources = ["csrc/*.cpp"]
include_dirs = ["include"]

[[tool.torchwheel.spec]]
name = "my_cuda"
device = "cuda"
torch_sources = "csrc/cuda/*.cu"
after = "my_cpu"
"""


def write(root: Path, text: str) -> Path:
    for name in ("csrc/ops.cpp", "csrc/cuda/ops.cu", "include/my/ops.h"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("// a source\n")
    (root / "pyproject.toml").write_text(text)
    return root / "pyproject.toml"


def test_names_default_from_the_distribution(tmp_path: Path) -> None:
    config = read_pyproject(write(tmp_path, GOOD))
    assert (config.name, config.env_prefix, config.package, config.version) == ("my-ext", "MY_EXT", "my_ext", "1.2.3")


def test_globs_resolve_relative_to_the_project(tmp_path: Path) -> None:
    specs = {s.name: s for s in read_pyproject(write(tmp_path, GOOD)).make_specs()}
    assert specs["my_cpu"].torch_sources == (tmp_path / "csrc" / "ops.cpp",)
    assert specs["my_cuda"].device == "cuda"
    assert specs["my_cpu"].root == tmp_path


def test_a_spec_loads_after_the_specs_it_names(tmp_path: Path) -> None:
    reordered = GOOD.replace('after = "my_cpu"', "").replace(
        'torch_sources = ["csrc/*.cpp"]', 'torch_sources = ["csrc/*.cpp"]\nafter = ["my_cuda"]'
    )
    assert [s.name for s in read_pyproject(write(tmp_path, reordered)).make_specs()] == ["my_cuda", "my_cpu"]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("[tool.torchwheel]\n", "[tool.torchwheel]\nsourcs = 1\n"), "unknown key 'sourcs' in [tool.torchwheel]"),
        (('name = "my_cpu"', 'name = "my_cpu"\ndevise = "cpu"'), "unknown key 'devise' in [[tool.torchwheel.spec]]"),
        (('device = "cuda"', 'device = "rocm"'), "device = 'rocm' is unknown"),
        (('["csrc/*.cpp"]', '["csrc/*.cc"]'), "'my_cpu' torch_sources 'csrc/*.cc' matches no file"),
        (('after = "my_cpu"', 'after = "nope"'), "after = ['nope'], which names no spec"),
        (("[tool.torchwheel]\n", "[tool.torchwheel]\nenv_prefix = 5\n"), "env_prefix = 5 is an integer, not a string"),
        (("[tool.torchwheel]\n", '[tool.torchwheel]\ngenerate_specs = "no colon"\n'), "is not module:function"),
        (("[tool.torchwheel]\n", "[tool.torchwheel]\nmatrix = 3\n"), "matrix = 3 is an integer"),
        (("[tool.torchwheel]\n", "[tool.torchwheel]\nsettings = 3\n"), "settings = 3 is an integer"),
        (
            ("[tool.torchwheel]\n", '[tool.torchwheel]\nsettings = {cache_dir = "/x"}\n'),
            "unknown key 'cache_dir' in [tool.torchwheel.settings]",
        ),
    ],
)
def test_a_mistake_is_one_line_naming_the_key_and_the_file(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    path = write(tmp_path, GOOD.replace(*edit, 1))
    with pytest.raises((SettingsError, SpecError)) as raised:
        read_pyproject(path).make_specs()
    message = str(raised.value)
    assert expected in message and str(path) in message and "\n" not in message


def test_a_cycle_of_after_is_named(tmp_path: Path) -> None:
    cyclic = GOOD.replace('torch_sources = ["csrc/*.cpp"]', 'torch_sources = ["csrc/*.cpp"]\nafter = ["my_cuda"]')
    with pytest.raises(SettingsError, match=r"cycle \(my_cpu -> my_cuda -> my_cpu\)"):
        read_pyproject(write(tmp_path, cyclic)).make_specs()


def test_a_table_without_specs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="declares no spec"):
        read_pyproject(write(tmp_path, '[project]\nname = "x"\n[tool.torchwheel]\n'))


def test_the_packaged_table_reads_back_as_the_same_specs(tmp_path: Path) -> None:
    """What a wheel carries (resolved globs, files under _torchwheel/src) gives the same specs,
    with the same paths relative to their root: the same cache keys in a checkout and installed."""
    (tmp_path / "checkout").mkdir()
    config = read_pyproject(write(tmp_path / "checkout", GOOD))
    table, files = packaged_table(config)
    installed = tmp_path / "site" / "my_ext" / "_torchwheel"
    for relative, source in files.items():
        (installed / "src" / relative).parent.mkdir(parents=True, exist_ok=True)
        (installed / "src" / relative).write_bytes(source.read_bytes())
    (installed / "project.json").write_text(json.dumps(table))
    packaged = read_packaged(installed.parent)
    assert packaged is not None
    relative = {s.name: [p.relative_to(s.root) for p in s.all_sources] for s in packaged.make_specs()}
    assert relative == {s.name: [p.relative_to(s.root) for p in s.all_sources] for s in config.make_specs()}
    assert sorted(files) == ["csrc/cuda/ops.cu", "csrc/ops.cpp", "include/my/ops.h"]


def test_the_cli_in_a_directory_without_a_table_says_how_to_name_a_project(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "torchwheel", "build"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.startswith("torchwheel: error: no pyproject.toml with a [tool.torchwheel] table in ")
    assert len(result.stderr.splitlines()) == 1


JOBS_PROJECT = """\
[project]
name = "jobs-demo"
version = "0.1.0"

[tool.torchwheel.settings]
max_jobs = 1

[[tool.torchwheel.spec]]
name = "jobs_demo_cpu"
sources = ["k.cpp"]
"""


@pytest.mark.parametrize(
    ("env", "options", "jobs"),
    [({}, [], 1), ({"MAX_JOBS": "2"}, [], 2), ({"MAX_JOBS": "2"}, ["--jobs", "3"], 3)],
    ids=["table", "environment-over-table", "option-over-environment"],
)
def test_the_cli_takes_a_setting_from_the_table_the_environment_then_its_options(
    tmp_path: Path, env: dict[str, str], options: list[str], jobs: int
) -> None:
    (tmp_path / "pyproject.toml").write_text(JOBS_PROJECT)
    (tmp_path / "k.cpp").write_text("int jobs_demo() { return 1; }\n")
    environ = {k: v for k, v in isolated_env(tmp_path).items() if k != "MAX_JOBS"} | env
    command = [sys.executable, "-m", "torchwheel", "build", "--device", "cpu", "--out", str(tmp_path / "out"), *options]
    result = subprocess.run(command, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"with ninja -j{jobs}\n" in result.stdout


def test_a_malformed_table_setting_stops_the_cli_before_anything_is_built(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(JOBS_PROJECT.replace("max_jobs = 1", 'max_jobs = "all"'))
    (tmp_path / "k.cpp").write_text("int jobs_demo() { return 1; }\n")
    environ = {k: v for k, v in isolated_env(tmp_path).items() if k != "MAX_JOBS"}
    command = [sys.executable, "-m", "torchwheel", "build", "--out", str(tmp_path / "out")]
    result = subprocess.run(command, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr == (
        f"torchwheel: error: {tmp_path / 'pyproject.toml'} [tool.torchwheel.settings] max_jobs = 'all' "
        "is not a positive whole number; use e.g. max_jobs = 4\n"
    )
    assert not (tmp_path / "out").exists()
