"""Stable-ABI specs: one binary for every torch from a minimum on. What selection, the cache key,
the flags and the matrix make of them, without compiling; tests/test_stable_build.py compiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import torch_at
from torchwheel.compile.build_target import BuildTarget
from torchwheel.compile.flags import spec_flags
from torchwheel.compile.keys import cache_key
from torchwheel.compile.toolchain import find_toolchain
from torchwheel.errors import SettingsError, SpecError
from torchwheel.release.matrix import parse_matrix
from torchwheel.runtime.manifest import ManifestEntry
from torchwheel.runtime.selection import RuntimeEnv, rejection_reason
from torchwheel.spec import JitSpec


def stable_entry(min_torch: str = "2.13", built_against: str = "2.14.1") -> ManifestEntry:
    return ManifestEntry(
        name="scale",
        file="scale/scale.so",
        sha256="0" * 64,
        device="cpu",
        torch_version=built_against,
        cxx11_abi=True,
        cuda_version=None,
        arch_list=(),
        torch_abi="stable",
        min_torch=min_torch,
    )


@pytest.mark.parametrize("running", ["2.13.0", "2.14.1", "2.15.0", "3.0.0"])
def test_a_stable_binary_loads_into_its_minimum_and_every_later_torch(running: str) -> None:
    assert rejection_reason(stable_entry(), RuntimeEnv(torch_at(running, None), ())) is None


def test_an_older_torch_than_the_minimum_is_refused_with_the_reason() -> None:
    reason = rejection_reason(stable_entry(min_torch="2.14"), RuntimeEnv(torch_at("2.13.0", None), ()))
    assert reason == "built for the torch stable ABI >= 2.14, running torch is 2.13.0"


def test_the_cxx11_abi_of_the_running_torch_does_not_matter_to_a_stable_binary() -> None:
    old_abi = RuntimeEnv(torch_at("2.14.1", None, cxx11_abi=False), ())
    assert rejection_reason(stable_entry(), old_abi) is None


@pytest.fixture
def stable_spec(tmp_path: Path) -> JitSpec:
    (tmp_path / "bind.cpp").write_text("// binding\n")
    return JitSpec(name="scale", torch_sources=[tmp_path / "bind.cpp"], torch_abi="stable", min_torch="2.11")


def target_at(version: str, cxx11_abi: bool = True) -> BuildTarget:
    return BuildTarget.make(torch_at(version, None, cxx11_abi), find_toolchain("c++", None, need_cuda=False))


def test_a_stable_spec_compiles_for_its_minimum_with_the_new_abi(stable_spec: JitSpec) -> None:
    flags = spec_flags(stable_spec, target_at("2.14.1", cxx11_abi=False)).cxx_torch
    assert "-DTORCH_TARGET_VERSION=0x020b000000000000" in flags
    assert "-D_GLIBCXX_USE_CXX11_ABI=1" in flags


def test_a_stable_specs_cache_key_survives_a_torch_upgrade(stable_spec: JitSpec) -> None:
    assert cache_key(stable_spec, target_at("2.13.0")) == cache_key(stable_spec, target_at("2.14.1"))
    assert cache_key(stable_spec, target_at("2.14.1")) == cache_key(stable_spec, target_at("2.14.1", cxx11_abi=False))


def test_a_full_specs_cache_key_follows_the_torch(tmp_path: Path) -> None:
    (tmp_path / "bind.cpp").write_text("// binding\n")
    full = JitSpec(name="scale", torch_sources=[tmp_path / "bind.cpp"])
    assert cache_key(full, target_at("2.13.0")) != cache_key(full, target_at("2.14.1"))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"torch_abi": "stable"}, "a stable-ABI spec needs min_torch"),
        ({"torch_abi": "stable", "min_torch": "2"}, "a stable-ABI spec needs min_torch"),
        ({"min_torch": "2.11"}, "min_torch is for stable-ABI specs"),
        ({"torch_abi": "limited"}, "torch_abi 'limited' is unknown"),
    ],
)
def test_a_spec_with_an_inconsistent_abi_is_one_line(tmp_path: Path, arguments: dict, message: str) -> None:
    (tmp_path / "bind.cpp").write_text("// binding\n")
    with pytest.raises(SpecError, match=message):
        JitSpec(name="scale", torch_sources=[tmp_path / "bind.cpp"], **arguments)


MATRIX = {
    "project": {"name": "minfer", "abis": ["stable", "full"], "min_torch": "2.11"},
    "torch": {"2.8": "2.8.0", "2.13": "2.13.0", "2.14": "2.14.1"},
    "accelerators": {
        "cpu": {},
        "cu126": {"cuda": "12.6", "arch_list": "8.0", "max_torch": "2.10"},
        "cu130": {"cuda": "13.0", "arch_list": "9.0", "min_torch": "2.9"},
    },
}


def test_stable_cells_are_one_per_accelerator_built_against_its_newest_torch() -> None:
    stable = [c for c in parse_matrix(MATRIX).cells if c.torch_abi == "stable"]
    assert [(c.id, c.distribution, c.torch_version) for c in stable] == [
        ("cpu", "minfer-cpu", "2.14.1"),
        ("cu130", "minfer-cu130", "2.14.1"),
    ]


def test_an_accelerator_with_no_torch_from_the_minimum_on_has_no_stable_cell() -> None:
    excluded = dict(parse_matrix(MATRIX).excluded)
    assert excluded["cu126"] == "no torch series of the matrix is in its range and at least the stable minimum 2.11"


def test_a_project_may_have_both_kinds_of_cell() -> None:
    ids = [c.id for c in parse_matrix(MATRIX).cells]
    assert "cu130" in ids and "cu130-torch214" in ids and "cpu-torch28" in ids


def test_a_stable_name_template_may_not_name_a_torch() -> None:
    matrix = {**MATRIX, "project": {**MATRIX["project"], "stable_distribution": "{name}-{accel}-torch{torch}"}}
    with pytest.raises(SettingsError, match=r"stable_distribution = .* uses unknown field \{torch\}"):
        parse_matrix(matrix)
