"""A JitSpec checks itself when it is made: each mistake is one line naming the value and the fix."""

from pathlib import Path

import pytest

from torchwheel.errors import SpecError
from torchwheel.spec import JitSpec, check_unique_names


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "kernel.cpp"
    path.write_text("int f() { return 1; }\n")
    return path


@pytest.mark.parametrize("name", ["Rmsnorm", "rms-norm", "", "a b", "x.y"])
def test_a_name_outside_lowercase_digits_and_underscore_is_refused(name: str, source: Path) -> None:
    with pytest.raises(SpecError, match=r"name .* is invalid; use only lowercase letters"):
        JitSpec(name=name, sources=[source])


def test_a_missing_source_is_named_with_its_path(source: Path) -> None:
    missing = source.parent / "nope.cpp"
    with pytest.raises(SpecError, match=rf"source {missing} does not exist; fix the path"):
        JitSpec(name="ok", sources=[source, missing])


def test_a_cuda_source_in_a_cpu_spec_is_refused_with_the_fix(tmp_path: Path) -> None:
    cu = tmp_path / "kernel.cu"
    cu.write_text("")
    with pytest.raises(SpecError, match=r"kernel.cu has suffix '.cu'.*set device='cuda'"):
        JitSpec(name="ok", sources=[cu])


def test_an_unknown_device_is_refused(source: Path) -> None:
    with pytest.raises(SpecError, match=r"device 'rocm' is unknown; use one of"):
        JitSpec(name="ok", sources=[source], device="rocm")


def test_a_spec_without_sources_is_refused() -> None:
    with pytest.raises(SpecError, match="has no sources"):
        JitSpec(name="ok", sources=[])


def test_a_missing_include_dir_is_refused(source: Path) -> None:
    with pytest.raises(SpecError, match=r"include dir .*/absent does not exist"):
        JitSpec(name="ok", sources=[source], include_dirs=[source.parent / "absent"])


def test_a_source_outside_the_root_is_refused(source: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(SpecError, match=r"is outside root"):
        JitSpec(name="ok", sources=[source], root=tmp_path / "elsewhere")


def test_two_specs_with_one_name_are_refused(source: Path) -> None:
    specs = [JitSpec(name="same", sources=[source]), JitSpec(name="same", sources=[source])]
    with pytest.raises(SpecError, match="'same' appears twice in one project"):
        check_unique_names(specs)


def test_lists_become_tuples_so_a_spec_is_hashable(source: Path) -> None:
    spec = JitSpec(name="ok", sources=[str(source)], extra_cflags=["-DX"])
    assert spec.sources == (source,)
    assert spec.extra_cflags == ("-DX",)
    assert spec.root == source.parent
    hash(spec)
