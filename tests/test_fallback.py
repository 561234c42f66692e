"""A prebuilt binary that does not fit falls back to a JIT build, with the reason logged and
kept; with JIT disabled the error lists every candidate and why each was rejected.

The prebuilt directory is a real `torchwheel build` of the tiny project; each case edits a copy
of its manifest (or its file) and loads in a fresh process. The JIT cache is shared by the
module, so only the first fallback compiles. Cases that need a GPU use the selection API with
a constructed runtime."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import isolated_env, run_python, torch_at, write_tiny_project
from torchwheel.runtime.manifest import ManifestEntry
from torchwheel.runtime.selection import RuntimeEnv, rejection_reason

LOAD = """
import json, sys, torch
from torchwheel import Loader
from torchwheel.errors import LoadError
from tiny_project import PROJECT
try:
    loaded = Loader(PROJECT).load("scale_a")
except LoadError as error:
    print(json.dumps({"error": str(error)}))
    sys.exit(0)
x = torch.ones(2)
torch.ops.tiny.scale_a(x)
print(json.dumps({"origin": loaded.origin, "reason": loaded.reason, "path": str(loaded.path), "value": x[0].item()}))
"""


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The tiny project and an environment whose JIT cache every test of the module shares."""
    root = tmp_path_factory.mktemp("fallback")
    project = write_tiny_project(root / "project")
    return project, isolated_env(root, project)


@pytest.fixture(scope="module")
def prebuilt(shared: tuple[Path, dict[str, str]]) -> Path:
    project, env = shared
    out = project.parent / "out"
    command = [sys.executable, "-m", "torchwheel", "build", "tiny_project:PROJECT", "--out", str(out)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return out / "data" / "aot"


@pytest.fixture
def variant(prebuilt: Path, tmp_path: Path) -> Callable[..., Path]:
    """A copy of the prebuilt dir with scale_a's manifest fields changed."""

    def make(name: str = "variant", **changes: object) -> Path:
        copy = Path(shutil.copytree(prebuilt, tmp_path / name))
        manifest = json.loads((copy / "manifest.json").read_text())
        manifest["specs"]["scale_a"].update(changes)
        (copy / "manifest.json").write_text(json.dumps(manifest))
        return copy

    return make


def load(shared: tuple[Path, dict[str, str]], *aot: Path, python: str | None = None, **extra: str) -> dict:
    _, env = shared
    env = {**env, **extra}
    if aot:
        env["TINY_AOT_PATH"] = os.pathsep.join(str(p) for p in aot)
    result = run_python(LOAD, env, python=python)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_matching_variant_loads_prebuilt(shared, variant) -> None:
    loaded = load(shared, variant())
    assert loaded["origin"] == "prebuilt" and loaded["reason"] is None and loaded["value"] == 2.0


def test_no_variant_installed_falls_back_with_that_reason(shared) -> None:
    loaded = load(shared)
    assert loaded["origin"] in ("jit-build", "jit-cache") and loaded["value"] == 2.0
    assert loaded["reason"] == "no prebuilt binary for it is installed"


def test_a_variant_for_another_torch_version_falls_back(shared, variant) -> None:
    aot = variant(torch_version="2.12.0")
    loaded = load(shared, aot)
    assert loaded["origin"] in ("jit-build", "jit-cache") and loaded["value"] == 2.0
    assert loaded["reason"] == f"prebuilt {aot}/scale_a/scale_a.so: built for torch 2.12, running torch is 2.13.0+cpu"


def test_a_variant_for_another_cxx11_abi_falls_back(shared, variant) -> None:
    aot = variant(cxx11_abi=False)
    loaded = load(shared, aot)
    assert loaded["origin"] in ("jit-build", "jit-cache")
    assert loaded["reason"] == (
        f"prebuilt {aot}/scale_a/scale_a.so: built with _GLIBCXX_USE_CXX11_ABI=0, running torch uses 1"
    )


def test_a_variant_for_another_cuda_major_is_refused() -> None:
    entry = ManifestEntry("k", "k/k.so", "0" * 64, "cuda", "2.14.1", True, "12.8", ("9.0a",))
    runtime = RuntimeEnv(torch_at("2.14.1+cu130", "13.0"), ((9, 0),))
    assert rejection_reason(entry, runtime) == "built for CUDA 12.8, running torch uses CUDA 13.0"


@pytest.mark.slow
def test_a_variant_for_another_cuda_major_falls_back_under_a_cuda_torch(shared, variant, torch214_python: str) -> None:
    # A real CUDA torch (2.14.1+cu130, no GPU needed): the manifest claims CUDA 12.8 code.
    aot = variant(torch_version="2.14.1+cu130", device="cuda", cuda_version="12.8", arch_list=["9.0a"])
    loaded = load(shared, aot, python=torch214_python)
    assert loaded["origin"] == "jit-build" and loaded["value"] == 2.0
    assert loaded["reason"] == (f"prebuilt {aot}/scale_a/scale_a.so: built for CUDA 12.8, running torch uses CUDA 13.0")


def test_a_variant_without_code_for_this_gpu_is_refused() -> None:
    entry = ManifestEntry("k", "k/k.so", "0" * 64, "cuda", "2.14.1", True, "13.0", ("8.0", "10.0f"))
    runtime = RuntimeEnv(torch_at("2.14.1+cu130", "13.0"), ((9, 0),), "13.0")
    assert rejection_reason(entry, runtime) == "has no code for this GPU (sm_90); built for 8.0;10.0f"


def test_ptx_only_for_this_gpu_is_refused_unless_accepted() -> None:
    entry = ManifestEntry("k", "k/k.so", "0" * 64, "cuda", "2.14.1", True, "13.0", ("8.0+PTX",))
    runtime = RuntimeEnv(torch_at("2.14.1+cu130", "13.0"), ((9, 0),), "13.0")
    assert rejection_reason(entry, runtime, accept_ptx_variable="MINFER_ACCEPT_PTX") == (
        "has only PTX for this GPU (sm_90), which the driver would compile at every start; building "
        "native code instead (MINFER_ACCEPT_PTX=1 loads the PTX)"
    )
    assert rejection_reason(entry, runtime, accept_ptx=True) is None


def test_accepted_ptx_is_refused_where_the_driver_is_older_than_its_toolkit() -> None:
    entry = ManifestEntry("k", "k/k.so", "0" * 64, "cuda", "2.14.1", True, "13.2", ("8.0+PTX",))
    runtime = RuntimeEnv(torch_at("2.14.1+cu132", "13.2"), ((9, 0),), "13.0")
    assert rejection_reason(entry, runtime, accept_ptx=True) == (
        "has only PTX for this GPU (sm_90), made by CUDA 13.2, newer than the driver's CUDA 13.0, "
        "which cannot compile it"
    )


def test_a_library_that_fails_its_sha256_falls_back(shared, variant) -> None:
    aot = variant()
    library = aot / "scale_a" / "scale_a.so"
    with open(library, "ab") as stream:
        stream.write(b"\0")
    loaded = load(shared, aot)
    assert loaded["origin"] in ("jit-build", "jit-cache") and loaded["value"] == 2.0
    assert loaded["reason"].startswith(f"prebuilt {library}: fails its sha256 check (")


def test_a_manifest_whose_digest_does_not_match_falls_back(shared, variant) -> None:
    aot = variant(sha256="ab" * 32)
    loaded = load(shared, aot)
    assert loaded["origin"] in ("jit-build", "jit-cache")
    assert "fails its sha256 check" in loaded["reason"] and "expected abababababab" in loaded["reason"]


def test_a_missing_library_falls_back(shared, variant) -> None:
    aot = variant()
    (aot / "scale_a" / "scale_a.so").unlink()
    loaded = load(shared, aot)
    assert loaded["origin"] in ("jit-build", "jit-cache")
    assert loaded["reason"] == f"prebuilt {aot}/scale_a/scale_a.so: its file is missing (No such file or directory)"


def test_an_unreadable_manifest_falls_back_with_its_problem(shared, variant) -> None:
    aot = variant()
    (aot / "manifest.json").write_text("{not json")
    loaded = load(shared, aot)
    assert loaded["origin"] in ("jit-build", "jit-cache")
    assert loaded["reason"] == (
        f"no prebuilt binary for it is installed; manifest {aot}/manifest.json is unreadable "
        "(JSONDecodeError); reinstall the package that holds it"
    )


def test_with_jit_disabled_the_error_lists_every_candidate_and_why(shared, variant) -> None:
    old = variant("old", torch_version="2.12.0")
    abi = variant("abi", cxx11_abi=False)
    bad = variant("bad", sha256="cd" * 32)
    broken = variant("broken")
    (broken / "manifest.json").write_text("[]")
    failed = load(shared, old, abi, bad, broken, TINY_DISABLE_JIT="1")["error"]
    assert "\n" not in failed
    assert failed.startswith("tiny: cannot load scale_a: prebuilt ")
    assert f"{old}/scale_a/scale_a.so: built for torch 2.12, running torch is 2.13.0+cpu; " in failed
    assert f"{abi}/scale_a/scale_a.so: built with _GLIBCXX_USE_CXX11_ABI=0, running torch uses 1; " in failed
    assert f"{bad}/scale_a/scale_a.so: fails its sha256 check (" in failed
    assert f"manifest {broken}/manifest.json has schema 'list', this torchwheel reads 1" in failed
    assert failed.endswith("JIT is disabled by TINY_DISABLE_JIT, so install a matching prebuilt package or unset it")


def test_a_verified_library_is_not_hashed_again_by_the_next_process(shared, variant) -> None:
    # Python's audit hook sees every open(); dlopen is not one, so a hash shows as an open of the file.
    aot = variant()
    library = aot / "scale_a" / "scale_a.so"
    probe = LOAD.replace(
        "from tiny_project import PROJECT",
        "from tiny_project import PROJECT\n"
        "opened = []\n"
        "sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == 'open' else None)",
    ).replace('"value": x[0].item()}', '"value": x[0].item(), "hashed": ' + repr(str(library)) + " in opened}")
    _, env = shared
    env = {**env, "TINY_AOT_PATH": str(aot)}
    first = json.loads(run_python(probe, env).stdout.strip().splitlines()[-1])
    second = json.loads(run_python(probe, env).stdout.strip().splitlines()[-1])
    assert (first["origin"], first["hashed"]) == ("prebuilt", True)
    assert (second["origin"], second["hashed"]) == ("prebuilt", False)
