"""`torchwheel doctor` and `python -m minfer doctor`: the environment, and per spec whether it
would load prebuilt or JIT and why, from a real prebuilt dir and a real JIT cache; nothing is
loaded, built or written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import isolated_env, run_python, tree_state, write_tiny_project


def doctor(env: dict[str, str], *args: str, module: str = "torchwheel") -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", module, "doctor", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def prebuilt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The tiny project with scale_a (only) prebuilt, and an env that finds it."""
    root = tmp_path_factory.mktemp("doctor")
    env = isolated_env(root, write_tiny_project(root / "project"))
    out = root / "out"
    command = [
        sys.executable,
        "-m",
        "torchwheel",
        "build",
        "tiny_project:PROJECT",
        "--spec",
        "scale_a",
        "--out",
        str(out),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return root, {**env, "TINY_AOT_PATH": str(out / "data" / "aot")}


def report(env: dict[str, str], *args: str) -> dict:
    result = doctor(env, "tiny_project:PROJECT", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_it_reports_torch_abi_cuda_and_gpus() -> None:
    facts = json.loads(doctor(isolated_env(Path("/nonexistent")), "minfer", "--json").stdout)["environment"]
    assert facts["torch"]["version"] == torch.__version__
    assert facts["torch"]["cxx11_abi"] == bool(torch._C._GLIBCXX_USE_CXX11_ABI)
    assert facts["torch"]["cuda"] == torch.version.cuda
    assert facts["gpus"] == [] and facts["driver_cuda"] is None  # this machine has no GPU


def test_it_reports_the_cache_and_lock_dirs_and_the_installed_variants(prebuilt) -> None:
    root, env = prebuilt
    (project,) = report(env)["projects"]
    assert project["cache_dir"] == {"path": str(root / "cache"), "state": "not created yet", "problem": None}
    assert project["lock_dir"]["path"] == str(root / "locks")
    (variant,) = project["prebuilt"]
    assert variant["path"] == env["TINY_AOT_PATH"]
    assert (variant["specs"], variant["torch"], variant["devices"]) == (1, [torch.__version__], ["cpu"])


def test_a_matching_spec_would_load_prebuilt_and_another_would_be_built_with_its_reason(prebuilt) -> None:
    _, env = prebuilt
    specs = {s["name"]: s for s in report(env)["projects"][0]["specs"]}
    assert specs["scale_a"]["origin"] == "prebuilt"
    assert specs["scale_a"]["path"] == f"{env['TINY_AOT_PATH']}/scale_a/scale_a.so"
    assert specs["scale_b"]["origin"] == "jit-build"
    assert specs["scale_b"]["reason"] == "no prebuilt binary for it is installed"


def test_a_spec_built_by_jit_earlier_would_load_from_the_cache(prebuilt, tmp_path: Path) -> None:
    _, env = prebuilt
    env = {**env, "TORCHWHEEL_CACHE_DIR": str(tmp_path / "cache")}
    run_python("from torchwheel import Loader; from tiny_project import PROJECT; Loader(PROJECT).load('scale_b')", env)
    specs = {s["name"]: s for s in report(env)["projects"][0]["specs"]}
    assert specs["scale_b"]["origin"] == "jit-cache"
    assert specs["scale_b"]["path"].startswith(str(tmp_path / "cache" / "scale_b"))


def test_a_rejected_variant_is_shown_with_why(prebuilt, tmp_path: Path) -> None:
    _, env = prebuilt
    aot = tmp_path / "aot"
    manifest = json.loads((Path(env["TINY_AOT_PATH"]) / "manifest.json").read_text())
    manifest["specs"]["scale_a"]["torch_version"] = "2.12.0"
    aot.mkdir()
    (aot / "manifest.json").write_text(json.dumps(manifest))
    (scale_a,) = [
        s for s in report({**env, "TINY_AOT_PATH": str(aot)})["projects"][0]["specs"] if s["name"] == "scale_a"
    ]
    assert scale_a["origin"] == "jit-build"
    assert scale_a["candidates"] == [
        {
            "path": f"{aot}/scale_a/scale_a.so",
            "rejection": f"built for torch 2.12, running torch is {torch.__version__}",
        }
    ]


def test_it_loads_builds_and_writes_nothing(prebuilt) -> None:
    root, env = prebuilt
    before = tree_state(root)
    result = doctor(env, "tiny_project:PROJECT")
    assert result.returncode == 0
    assert tree_state(root) == before  # no cache dir, no lock dir, no verification marker
    assert not (root / "cache").exists()


def test_the_text_report_has_a_line_per_spec(prebuilt) -> None:
    _, env = prebuilt
    lines = doctor(env, "tiny_project:PROJECT").stdout.splitlines()
    assert any(line.split()[:2] == ["scale_a", "prebuilt"] for line in lines)
    assert any(line.split()[:2] == ["scale_b", "jit-build"] for line in lines)
    assert any(line.startswith("torch       ") for line in lines)


def test_with_jit_disabled_a_spec_that_cannot_load_is_a_problem(prebuilt) -> None:
    _, env = prebuilt
    result = doctor({**env, "TINY_DISABLE_JIT": "1"}, "tiny_project:PROJECT")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "torchwheel doctor: tiny: cannot load scale_b: no prebuilt binary for it is installed; JIT is disabled "
        "by TINY_DISABLE_JIT, so install a matching prebuilt package or unset it"
    ]


def test_a_damaged_variant_is_a_problem(prebuilt, tmp_path: Path) -> None:
    _, env = prebuilt
    aot = Path(env["TINY_AOT_PATH"])
    copy = tmp_path / "aot"
    os.makedirs(copy / "scale_a")
    (copy / "manifest.json").write_text((aot / "manifest.json").read_text())
    (copy / "scale_a" / "scale_a.so").write_bytes((aot / "scale_a" / "scale_a.so").read_bytes()[:1000])
    result = doctor({**env, "TINY_AOT_PATH": str(copy)}, "tiny_project:PROJECT")
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"torchwheel doctor: tiny: prebuilt {copy}/scale_a/scale_a.so: fails its sha256 check (")


def test_python_m_minfer_doctor_gives_a_verdict_for_every_minfer_spec(tmp_path: Path) -> None:
    result = doctor(isolated_env(tmp_path), "--json", module="minfer")
    assert result.returncode == 0, result.stderr
    (project,) = json.loads(result.stdout)["projects"]
    origins = {s["name"]: s["origin"] for s in project["specs"]}
    assert len(origins) == 30
    assert origins["rmsnorm_bf16_cpu"] == "jit-build"
    assert origins["rmsnorm_bf16_cuda"] == (
        "unavailable" if torch.version.cuda is None else origins["rmsnorm_bf16_cuda"]
    )


def test_without_a_project_it_reports_every_installed_one(tmp_path: Path) -> None:
    result = doctor(isolated_env(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    assert "minfer" in [p["name"] for p in json.loads(result.stdout)["projects"]]
