"""Variant wheels end to end: minfer's stable-ABI cells (one per accelerator) built against torch
2.14.1, reusing objects across cells, byte-identical from two clones, published to a real index
(pypiserver) and installed by real pip into a torch 2.13.0 environment, which stays as it was and
loads them prebuilt."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from conftest import HAS_NVCC, REPO, TORCH214, MinferClone, clean_env
from conftest import run_ok as run

# minfer's cells build against torch 2.14.1 (ci/matrix.toml): without it there is nothing to test.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not TORCH214, reason="no torch 2.14.1 environment: `nox -s tests` makes one"),
]
needs_cuda_build = pytest.mark.skipif(not (TORCH214 and HAS_NVCC), reason="needs nvcc and the torch 2.14.1 environment")


@pytest.fixture(scope="module")
def first(minfer_clones: tuple[MinferClone, MinferClone]) -> MinferClone:
    """A clone with its cells built (tests/conftest.py: shared with the conda tests)."""
    return minfer_clones[0]


@pytest.fixture(scope="module")
def second(minfer_clones: tuple[MinferClone, MinferClone]) -> MinferClone:
    """The same commit cloned at another path and built the same way."""
    return minfer_clones[1]


def wheel_names(wheel: Path) -> list[str]:
    return zipfile.ZipFile(wheel).namelist()


def wheel_text(wheel: Path, suffix: str) -> str:
    archive = zipfile.ZipFile(wheel)
    (name,) = [n for n in archive.namelist() if n.endswith(suffix)]
    return archive.read(name).decode()


def test_a_variant_wheel_holds_only_the_prebuilt_files_and_requires_the_minimum_torch(first: MinferClone) -> None:
    wheel = first.wheels["cpu"]
    assert wheel.name.startswith("minfer_cpu-0.1.0-py3-none-manylinux_2_")
    names = wheel_names(wheel)
    payload = [n for n in names if ".dist-info/" not in n]
    assert "minfer.cpu.prebuilt/manifest.json" in payload
    assert sorted(n for n in payload if n.endswith(".so")) == sorted(
        f"minfer.cpu.prebuilt/{op}_{dt}_cpu/{op}_{dt}_cpu.so"
        for op in ("rmsnorm", "fused_add_rmsnorm", "silu_and_mul", "gelu_tanh_and_mul", "apply_rope")
        for dt in ("fp16", "bf16", "fp32")
    )
    assert len(payload) == 16
    metadata = wheel_text(wheel, ".dist-info/METADATA")
    assert "Requires-Dist: torch>=2.11\n" in metadata and "Requires-Dist: minfer==0.1.0\n" in metadata
    # The platform tag is the policy the audit found the binaries to meet, and the manifest says so.
    manifest = json.loads(zipfile.ZipFile(wheel).read("minfer.cpu.prebuilt/manifest.json"))
    assert manifest["audit"]["policy"] == "manylinux_2_28_x86_64"  # torch 2.14.1's own tag
    assert {(e["torch_abi"], e["min_torch"]) for e in manifest["specs"].values()} == {("stable", "2.11")}
    assert f"Tag: py3-none-{manifest['audit']['platform_tag']}\n" in wheel_text(wheel, ".dist-info/WHEEL")


@needs_cuda_build
def test_the_cuda_cell_compiles_none_of_the_cpu_cells_units_again(first: MinferClone) -> None:
    """Both cells build against one torch with one set of flags: the cu130 cell's CPU specs are the
    cpu cell's objects, up to date in the shared build root."""
    before = set(first.ninja_log("wheel-cpu"))
    new_outputs = [
        line.split("\t")[3] for line in first.ninja_log("wheel-cu130") if line not in before and "\t" in line
    ]
    compiled = [o for o in new_outputs if o.endswith(".o")]
    # 15 CUDA kernels and the 15 bindings of the CUDA specs; no CPU kernel or CPU binding again.
    assert len(compiled) == 30 and not [o for o in compiled if "/cpu/" in o], compiled
    assert sum(o.endswith(".cu.o") for o in compiled) == 15


@needs_cuda_build
def test_a_cuda_cell_carries_cpu_and_cuda_specs_built_for_its_archs(first: MinferClone) -> None:
    wheel = first.wheels["cu130"]
    manifest = json.loads(zipfile.ZipFile(wheel).read("minfer.cu130.prebuilt/manifest.json"))
    devices = [e["device"] for e in manifest["specs"].values()]
    assert devices.count("cpu") == 15 and devices.count("cuda") == 15
    cuda = manifest["specs"]["rmsnorm_bf16_cuda"]
    assert cuda["cuda_version"] == "13.0"
    assert cuda["arch_list"] == ["8.0", "9.0a"]


def test_every_wheel_is_byte_identical_from_two_clones_at_two_paths(first: MinferClone, second: MinferClone) -> None:
    assert first.wheels.keys() == second.wheels.keys()
    for cell, wheel in first.wheels.items():
        other = second.wheels[cell]
        assert hashlib.sha256(wheel.read_bytes()).hexdigest() == hashlib.sha256(other.read_bytes()).hexdigest(), cell
    assert str(first.path) not in first.wheels["cpu"].read_bytes().decode("latin-1")


def test_twine_check_passes_on_every_wheel(first: MinferClone) -> None:
    run(sys.executable, "-m", "twine", "check", "--strict", *first.wheels.values())


@pytest.fixture(scope="module")
def index(first: MinferClone, tmp_path_factory: pytest.TempPathFactory):
    """A real pypiserver on a loopback port, holding the core packages, the cpu variant
    and the two small dependencies of torchwheel; nothing else."""
    packages = tmp_path_factory.mktemp("packages")
    for package in ("torchwheel", "minfer"):
        run(
            sys.executable,
            "-m",
            "build",
            "--no-isolation",
            "--wheel",
            "--outdir",
            packages,
            first.path / "packages" / package,
        )
    run(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", packages, "ninja", "packaging")
    served = tmp_path_factory.mktemp("served")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # -a . -P .: no authentication, for a throwaway index on loopback.
    command = [
        sys.executable,
        "-m",
        "pypiserver",
        "run",
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-a",
        ".",
        "-P",
        ".",
    ]
    server = subprocess.Popen([*command, str(served)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/simple/", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        uploads = [*packages.glob("*.whl"), first.wheels["cpu"]]
        run(
            sys.executable,
            "-m",
            "twine",
            "upload",
            "--non-interactive",
            "--repository-url",
            url,
            "-u",
            "x",
            "-p",
            "x",
            *uploads,
        )
        yield f"{url}/simple/"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def user_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv that already has torch 2.13.0, as a user's would."""
    env = tmp_path_factory.mktemp("user") / "venv"
    run(sys.executable, "-m", "venv", env)
    run(env / "bin" / "python", "-m", "pip", "install", "-q", "torch==2.13.0")
    return env / "bin" / "python"


def torch_fingerprint(python: Path) -> str:
    """torch's version and the hash of its RECORD: any reinstall or change shows."""
    code = (
        "import hashlib, importlib.metadata as m; d = m.distribution('torch'); "
        "print(d.version, hashlib.sha256(d.read_text('RECORD').encode()).hexdigest())"
    )
    return run(python, "-c", code)


def pip_from_index(python: Path, index: str, *args: str) -> str:
    # The index alone: no config file's find-links or extra index may supply anything.
    env = clean_env(PIP_CONFIG_FILE=os.devnull)
    return run(python, "-m", "pip", "install", "--no-cache-dir", "--index-url", index, *args, env=env)


def run_every_op(python: Path, tmp_path: Path, **env: str) -> str:
    """scripts/smoke.py: every op and dtype against the reference, and where each spec came from."""
    return run(
        python,
        REPO / "scripts" / "smoke.py",
        "cpu",
        env=clean_env(TORCHWHEEL_CACHE_DIR=str(tmp_path / "cache"), **env),
    )


def test_pip_installs_the_variant_built_for_2_14_into_torch_2_13_and_every_op_runs_prebuilt(
    index: str, user_env: Path, tmp_path: Path
) -> None:
    before = torch_fingerprint(user_env)
    pip_from_index(user_env, index, "minfer-cpu")
    assert torch_fingerprint(user_env) == before  # the user's torch is left as it was
    output = run_every_op(user_env, tmp_path, MINFER_DISABLE_JIT="1")
    assert "all ops match the torch reference" in output
    origins = [line.split()[1] for line in output.splitlines() if line.endswith("_cpu") or "_cpu " in line]
    assert origins.count("prebuilt") == 15
    # Nothing compiled: the cache holds no spec entry (only, at most, the loader's hidden
    # record of files whose sha256 it has checked).
    cache = tmp_path / "cache"
    assert not cache.exists() or not [p.name for p in cache.iterdir() if not p.name.startswith(".")]


def test_the_meta_package_extra_pulls_the_same_variant(index: str, user_env: Path, tmp_path: Path) -> None:
    run(user_env, "-m", "pip", "uninstall", "-q", "-y", "minfer-cpu", "minfer")
    before = torch_fingerprint(user_env)
    pip_from_index(user_env, index, "minfer[cpu]")
    assert torch_fingerprint(user_env) == before
    assert "all ops match the torch reference" in run_every_op(user_env, tmp_path, MINFER_DISABLE_JIT="1")


@needs_cuda_build
def test_the_cuda_variant_serves_a_cpu_torch_its_cpu_ops_and_says_why_not_the_cuda_ones(
    first: MinferClone, index: str, user_env: Path, tmp_path: Path
) -> None:
    run(user_env, "-m", "pip", "uninstall", "-q", "-y", "minfer-cpu")
    run(user_env, "-m", "pip", "install", "-q", "--no-deps", first.wheels["cu130"])
    code = (
        "import torch, minfer; minfer.rmsnorm(torch.ones(2, 8), torch.ones(8)); "
        "s = minfer.loaded_specs()['rmsnorm_fp32_cpu']; print(s.origin); "
        "from torchwheel.runtime.loader import Loader; from torchwheel.project import load_project; "
        "c = Loader(load_project('minfer')).explain('rmsnorm_fp32_cuda', 'cuda')[0][0]; print(c.rejection)"
    )
    env = clean_env(TORCHWHEEL_CACHE_DIR=str(tmp_path / "cache"), MINFER_DISABLE_JIT="1")
    origin, reason = run(user_env, "-c", code, env=env).strip().splitlines()[-2:]
    assert origin == "prebuilt"  # built under torch 2.14.1, loaded under 2.13.0
    assert reason == "built for CUDA, running torch has no CUDA"


@pytest.fixture(scope="module")
def shards(first: MinferClone) -> tuple[float, list[Path]]:
    """The cu130 cell built again with a size limit one byte under its whole wheel (in the
    clone's build root, after its other builds: MinferClone.build)."""
    return first.split_limit_mb, first.split_wheels


@needs_cuda_build
def test_a_cell_over_the_size_limit_splits_into_shards_per_arch_family(shards: tuple[float, list[Path]]) -> None:
    limit_mb, wheels = shards
    names = [w.name.split("-")[0] for w in wheels]
    assert names == ["minfer_cu130", "minfer_cu130_sm8x", "minfer_cu130_sm9x"]
    assert all(w.stat().st_size <= limit_mb * 1e6 for w in wheels)
    main, sm8x, sm9x = wheels
    metadata = wheel_text(main, ".dist-info/METADATA")
    assert "Requires-Dist: minfer-cu130-sm8x==0.1.0\n" in metadata
    assert "Requires-Dist: minfer-cu130-sm9x==0.1.0\n" in metadata
    # Each shard holds every CUDA spec for its family only; the cell's wheel keeps the CPU specs.
    for shard, archs in ((sm8x, ["8.0"]), (sm9x, ["9.0a"])):
        manifest = json.loads(wheel_text(shard, "/manifest.json"))
        assert {e["device"] for e in manifest["specs"].values()} == {"cuda"} and len(manifest["specs"]) == 15
        assert {tuple(e["arch_list"]) for e in manifest["specs"].values()} == {tuple(archs)}
    main_manifest = json.loads(zipfile.ZipFile(main).read("minfer.cu130.prebuilt/manifest.json"))
    assert {e["device"] for e in main_manifest["specs"].values()} == {"cpu"}


@needs_cuda_build
def test_the_loader_finds_the_shard_that_covers_the_gpu(
    first: MinferClone, shards: tuple[float, list[Path]], tmp_path: Path
) -> None:
    site = tmp_path / "site"
    for wheel in shards[1]:
        zipfile.ZipFile(wheel).extractall(site)
    code = f"""
from pathlib import Path
from torchwheel.runtime.manifest import read_manifest
from torchwheel.runtime.prebuilt_dirs import installed_variant_dirs
from torchwheel.runtime.selection import RuntimeEnv, candidates_for
from torchwheel.runtime.torch_install import TorchInstall
manifests = [read_manifest(d) for d in installed_variant_dirs("minfer", [{str(site)!r}])]
for gpu in ((8, 6), (9, 0)):
    runtime = RuntimeEnv(TorchInstall("2.14.1+cu130", True, "13.0", Path("/torch")), (gpu,))
    found = candidates_for("rmsnorm_bf16_cuda", manifests, runtime)
    print(gpu, [c.manifest.directory.name for c in found if c.rejection is None])
"""
    output = run(TORCH214, "-c", code, env=clean_env(PYTHONPATH=f"{first.path}/packages/torchwheel/src"))
    assert output.splitlines() == [
        "(8, 6) ['minfer.cu130-sm8x.prebuilt']",
        "(9, 0) ['minfer.cu130-sm9x.prebuilt']",
    ]
