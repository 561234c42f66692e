"""The cache key changes with everything that changes the binary, and with nothing else."""

import shutil
from pathlib import Path

import pytest

from torchwheel.compile.build_target import BuildTarget
from torchwheel.compile.keys import cache_key, project_headers
from torchwheel.compile.toolchain import find_toolchain
from torchwheel.project import load_project
from torchwheel.runtime.torch_install import TorchInstall


def key_of(project_dir: Path, monkeypatch: pytest.MonkeyPatch, name: str = "scale_a") -> str:
    monkeypatch.syspath_prepend(str(project_dir))
    for module in [m for m in __import__("sys").modules if m == "tiny_project"]:
        del __import__("sys").modules[module]
    spec = {s.name: s for s in load_project("tiny_project:PROJECT").make_specs()}[name]
    target = BuildTarget.make(TorchInstall.running(), find_toolchain("c++", None, need_cuda=False))
    return cache_key(spec, target)


def test_the_key_is_stable(tiny_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert key_of(tiny_project, monkeypatch) == key_of(tiny_project, monkeypatch)


def test_a_moved_checkout_has_the_same_key(tiny_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = key_of(tiny_project, monkeypatch)
    moved = shutil.copytree(tiny_project, tmp_path / "somewhere" / "else")
    with monkeypatch.context() as inner:
        assert key_of(moved, inner) == before


def test_a_changed_source_changes_the_key(tiny_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = key_of(tiny_project, monkeypatch)
    kernel = tiny_project / "src" / "kernel.cpp"
    kernel.write_text(kernel.read_text() + "// changed\n")
    assert key_of(tiny_project, monkeypatch) != before


def test_a_changed_included_header_changes_the_key(tiny_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = key_of(tiny_project, monkeypatch)
    header = tiny_project / "src" / "include" / "tiny" / "scale.h"
    header.write_text(header.read_text().replace("2.0f", "3.0f"))
    assert key_of(tiny_project, monkeypatch) != before


def test_a_changed_flag_changes_the_key(tiny_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = key_of(tiny_project, monkeypatch)
    monkeypatch.setenv("TINY_EXTRA_CFLAGS", "-DEXTRA=1")
    assert key_of(tiny_project, monkeypatch) != before


def test_an_unrelated_file_does_not_change_the_key(tiny_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = key_of(tiny_project, monkeypatch)
    (tiny_project / "src" / "include" / "tiny" / "unused.h").write_text("#define UNUSED 1\n")
    assert key_of(tiny_project, monkeypatch) == before


def test_the_header_scan_follows_project_includes_only(tiny_project: Path) -> None:
    from torchwheel.spec import JitSpec

    src = tiny_project / "src"
    spec = JitSpec("scale_a", [src / "kernel.cpp"], [src / "scale_a.cpp"], include_dirs=[src / "include"])
    assert project_headers(spec) == [(src / "include" / "tiny" / "scale.h").resolve()]
