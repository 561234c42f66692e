"""One stable-ABI binary for every torch from its minimum on, built and loaded for real: a project
with a stable spec (and a full-ABI one beside it) is built into variant wheels under torch 2.14.1
and loaded, with JIT disabled, under torch 2.13.0 and 2.14.1."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import isolated_env
from torchwheel.runtime.manifest import ManifestEntry, sha256_of, write_manifest

STABLE_BINDING = """\
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>
#include <torch/headeronly/util/Exception.h>

namespace {
using torch::stable::Tensor;

void scale(const Tensor& out, const Tensor& x, double factor) {
  STD_TORCH_CHECK(x.scalar_type() == torch::headeronly::ScalarType::Float, "tstable.scale: float32 only");
  const auto* in = static_cast<const float*>(x.const_data_ptr());
  auto* result = static_cast<float*>(out.mutable_data_ptr());
  for (int64_t i = 0; i < x.numel(); ++i) result[i] = in[i] * static_cast<float>(factor);
}
}  // namespace

STABLE_TORCH_LIBRARY(tstable, m) { m.def("scale(Tensor(a!) out, Tensor x, float factor) -> ()"); }
STABLE_TORCH_LIBRARY_IMPL(tstable, CPU, m) { m.impl("scale", TORCH_BOX(&scale)); }
"""

FULL_BINDING = """\
#include <ATen/ATen.h>
#include <torch/library.h>

TORCH_LIBRARY(tfull, m) { m.def("twice(Tensor x) -> Tensor"); }
TORCH_LIBRARY_IMPL(tfull, CPU, m) { m.impl("twice", [](const at::Tensor& x) { return x * 2; }); }
"""

PYPROJECT = """\
[project]
name = "tstable"
version = "0.1.0"

[tool.torchwheel]
torch_abi = "stable"
min_torch = "{min_torch}"

[[tool.torchwheel.spec]]
name = "tstable_cpu"
torch_sources = ["csrc/stable.cpp"]

[[tool.torchwheel.spec]]
name = "tfull_cpu"
torch_abi = "full"
torch_sources = ["csrc/full.cpp"]

[tool.torchwheel.matrix.project]
abis = ["stable", "full"]
min_torch = "{min_torch}"

[tool.torchwheel.matrix.torch]
"2.13" = "2.13.0"
"2.14" = "2.14.1"

[tool.torchwheel.matrix.accelerators.cpu]
"""

# Run under each torch: import the package (its one call loads every spec) and use both ops.
USE_IT = """\
import json, torch, tstable
out, x = torch.empty(5), torch.arange(5.0)
torch.ops.tstable.scale(out, x, 1.5)
assert torch.equal(out, x * 1.5), out
assert torch.equal(torch.ops.tfull.twice(x), x * 2) if "tfull_cpu" in tstable.loader.loaded() else True
print(json.dumps({name: spec.origin for name, spec in tstable.loader.loaded().items()}))
"""


@dataclass(frozen=True)
class Built:
    project: Path
    wheels: dict[str, Path]  # cell id -> wheel


def write_project(root: Path, min_torch: str, *, with_full: bool = False) -> Path:
    """The project; with its full-ABI spec (and full cells) only where `with_full`."""
    (root / "csrc").mkdir(parents=True)
    (root / "csrc" / "stable.cpp").write_text(STABLE_BINDING)
    (root / "csrc" / "full.cpp").write_text(FULL_BINDING)
    (root / "tstable").mkdir()
    (root / "tstable" / "__init__.py").write_text("import torchwheel\n\nloader = torchwheel.load_package(__name__)\n")
    text = PYPROJECT.replace("{min_torch}", min_torch)
    if not with_full:
        full_spec = text[
            text.index('[[tool.torchwheel.spec]]\nname = "tfull_cpu"') : text.index("[tool.torchwheel.matrix.project]")
        ]
        text = text.replace(full_spec, "").replace('abis = ["stable", "full"]', 'abis = ["stable"]')
    (root / "pyproject.toml").write_text(text)
    return root


def build_cells(root: Path, cells: dict[str, str], env: dict[str, str]) -> dict[str, Path]:
    """`torchwheel wheel --cell ID --python PY` in the project's directory, per cell."""
    wheels = {}
    for cell, python in cells.items():
        out = root / "dist" / cell
        command = [sys.executable, "-m", "torchwheel", "wheel", "--cell", cell, "--python", python, "--out", str(out)]
        result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=1200)
        assert result.returncode == 0, result.stdout + result.stderr
        (wheels[cell],) = out.glob("*.whl")
    return wheels


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return isolated_env(tmp_path_factory.mktemp("stable-env"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str], torch214_python: str) -> Built:
    """The stable-only project's one cpu cell, built under torch 2.14.1."""
    root = write_project(tmp_path_factory.mktemp("stable") / "tstable", "2.13")
    return Built(root, build_cells(root, {"cpu": torch214_python}, env))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str], torch214_python: str) -> Built:
    """A project of both kinds: its stable cell and its full cell for torch 2.13, from one matrix."""
    root = write_project(tmp_path_factory.mktemp("mixed") / "tstable", "2.13", with_full=True)
    return Built(root, build_cells(root, {"cpu": torch214_python, "cpu-torch213": sys.executable}, env))


def installed(tmp: Path, project: Path, wheels: list[Path]) -> dict[str, str]:
    """The wheels unpacked into a site dir as pip lays them out, the package importable."""
    site = tmp / "site"
    for wheel in wheels:
        zipfile.ZipFile(wheel).extractall(site)
    return {"PYTHONPATH": f"{site}:{project}", "TSTABLE_DISABLE_JIT": "1"}


def use_it(python: str, env: dict[str, str]) -> dict[str, str]:
    result = subprocess.run([python, "-c", USE_IT], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    loaded: dict[str, str] = json.loads(result.stdout.splitlines()[-1])
    return loaded


def test_the_stable_wheel_is_one_per_accelerator_and_requires_the_minimum(built: Built) -> None:
    wheel = built.wheels["cpu"]
    assert wheel.name.startswith("tstable_cpu-0.1.0-py3-none-")
    metadata = zipfile.ZipFile(wheel).read("tstable_cpu-0.1.0.dist-info/METADATA").decode()
    assert "Requires-Dist: torch>=2.13" in metadata
    manifest = json.loads(zipfile.ZipFile(wheel).read("tstable.cpu.prebuilt/manifest.json"))
    assert list(manifest["specs"]) == ["tstable_cpu"]  # each wheel holds its kind only
    assert (manifest["specs"]["tstable_cpu"]["torch_abi"], manifest["specs"]["tstable_cpu"]["min_torch"]) == (
        "stable",
        "2.13",
    )


@pytest.mark.parametrize("torch_version", ["2.13.0", "2.14.1"])
def test_built_once_under_2_14_it_loads_prebuilt_under_both_torches(
    built: Built, env: dict[str, str], tmp_path: Path, torch214_python: str, torch_version: str
) -> None:
    python = sys.executable if torch_version == "2.13.0" else torch214_python
    loaded = use_it(python, {**env, **installed(tmp_path, built.project, [built.wheels["cpu"]])})
    assert loaded == {"tstable_cpu": "prebuilt"}


def test_a_project_of_both_kinds_loads_both_wheels_prebuilt(mixed: Built, env: dict[str, str], tmp_path: Path) -> None:
    assert list(json.loads(zipfile.ZipFile(mixed.wheels["cpu-torch213"]).read(
        "tstable.cpu-torch213.prebuilt/manifest.json"))["specs"]) == ["tfull_cpu"]  # fmt: skip
    wheels = [mixed.wheels["cpu"], mixed.wheels["cpu-torch213"]]
    assert use_it(sys.executable, {**env, **installed(tmp_path, mixed.project, wheels)}) == {
        "tstable_cpu": "prebuilt",
        "tfull_cpu": "prebuilt",
    }


def test_a_stable_build_for_2_14_is_refused_under_2_13_with_the_reason(
    tmp_path: Path, env: dict[str, str], torch214_python: str
) -> None:
    root = write_project(tmp_path / "tstable", "2.14")
    (wheel,) = build_cells(root, {"cpu": torch214_python}, env).values()
    result = subprocess.run(
        [sys.executable, "-c", "import tstable"],
        env={**env, **installed(tmp_path, root, [wheel])},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "built for the torch stable ABI >= 2.14, running torch is 2.13.0" in result.stderr.splitlines()[-1]


def fake_stable_library(tmp: Path, source: str, min_torch: str) -> Path:
    """A .so compiled here and described by a manifest as a stable build: what the audit reads."""
    prebuilt = tmp / "prebuilt"
    (prebuilt / "fake").mkdir(parents=True)
    (tmp / "fake.cpp").write_text(source)
    library = prebuilt / "fake" / "fake.so"
    subprocess.run(["g++", "-shared", "-fPIC", "-o", str(library), str(tmp / "fake.cpp")], check=True, timeout=120)
    entry = ManifestEntry(
        "fake", "fake/fake.so", sha256_of(library), "cpu", "2.14.1", True, None, (), "stable", min_torch
    )
    write_manifest(prebuilt, "fake", [entry])
    return prebuilt


def audit(prebuilt: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "torchwheel", "audit", str(prebuilt), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_the_audit_flags_a_stable_library_that_calls_aten(tmp_path: Path, env: dict[str, str]) -> None:
    source = 'namespace at { void empty_like_somehow(int); }\nextern "C" void f() { at::empty_like_somehow(1); }\n'
    result = audit(fake_stable_library(tmp_path, source, "2.13"), env)
    assert result.returncode == 1
    assert "a stable-ABI build that uses torch's C++ API: at::empty_like_somehow(int)" in result.stdout


def test_the_audit_flags_a_shim_function_newer_than_the_minimum(
    tmp_path: Path, env: dict[str, str], torch214_python: str
) -> None:
    """torch_has_storage is exported by torch 2.14's libtorch_cpu and not by 2.13's."""
    source = 'extern "C" int torch_has_storage(void*, bool*);\nextern "C" int f() { return torch_has_storage(0, 0); }\n'
    prebuilt = fake_stable_library(tmp_path, source, "2.13")
    result = audit(prebuilt, env, "--python", torch214_python, "--min-torch-python", sys.executable)
    assert result.returncode == 1
    assert "calls shim functions that torch 2.13.0" in result.stdout and "torch_has_storage" in result.stdout
    unchecked = audit(prebuilt, env, "--python", torch214_python)
    assert unchecked.returncode == 0, unchecked.stdout
    assert "torch 2.13 (its minimum) is not at hand" in unchecked.stdout
