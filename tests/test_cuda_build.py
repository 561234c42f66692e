"""CUDA specs against real torch 2.14.1 (CUDA 13.0) and nvcc 13.0: they compile and link here,
with no GPU; the cache key knows a toolkit by its version, not by its path."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import build_env, run_python

pytestmark = [pytest.mark.cuda_build, pytest.mark.slow]

CUDA_HOME = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda"))


@pytest.fixture(scope="module")
def cuda_build(minfer_cuda_build: Path) -> Path:
    return minfer_cuda_build


def test_every_cuda_spec_compiles_and_links_for_sm_90a(cuda_build: Path) -> None:
    manifest = json.loads((cuda_build / "data" / "aot" / "manifest.json").read_text())
    assert len(manifest["specs"]) == 15
    for name, entry in manifest["specs"].items():
        assert name.endswith("_cuda")
        assert entry["torch_version"].startswith("2.14.1")
        assert (entry["cuda_version"], entry["arch_list"]) == ("13.0", ["9.0a"])
        assert (cuda_build / "data" / "aot" / entry["file"]).stat().st_size > 0


def test_the_binary_carries_device_code(cuda_build: Path) -> None:
    library = cuda_build / "data" / "aot" / "rmsnorm_bf16_cuda" / "rmsnorm_bf16_cuda.so"
    sections = subprocess.run(["readelf", "-SW", str(library)], capture_output=True, text=True, check=True)
    assert ".nv_fatbin" in sections.stdout


JIT_LOAD = """
import json
from minfer import ops
loaded = ops._loader.load("silu_and_mul_fp16_cuda")
print(json.dumps({"origin": loaded.origin, "path": str(loaded.path)}))
"""

KEY_OF = """
import json
from torchwheel.arch import parse_arch_list
from torchwheel.runtime.jit_cache import JitCache
from torchwheel.compile.build_target import BuildTarget
from torchwheel.compile.keys import cache_key
from torchwheel.runtime.torch_install import TorchInstall
from torchwheel.compile.toolchain import find_toolchain
from torchwheel.project import load_project; PROJECT = load_project("minfer")
settings = PROJECT.settings()
spec = {s.name: s for s in PROJECT.make_specs()}["silu_and_mul_fp16_cuda"]
toolchain = find_toolchain(settings.cxx, settings.cuda_home, need_cuda=True)
key = cache_key(spec, BuildTarget.make(TorchInstall.running(), toolchain, parse_arch_list("9.0a")))
hit = JitCache(settings.cache_dir).lookup(spec.name, key)
print(json.dumps({"key": key, "hit": hit is not None, "nvcc": toolchain.nvcc.version}))
"""


def test_a_symlinked_cuda_home_hits_the_cache_and_another_toolkit_misses(torch214_python: str, tmp_path: Path) -> None:
    env = build_env(tmp_path, MINFER_CUDA_ARCH_LIST="9.0a")
    first = run_python(JIT_LOAD, {**env, "CUDA_HOME": str(CUDA_HOME)}, python=torch214_python)
    assert json.loads(first.stdout.splitlines()[-1])["origin"] == "jit-build"

    link = tmp_path / "toolkit link"
    link.symlink_to(CUDA_HOME.resolve())
    second = run_python(JIT_LOAD, {**env, "CUDA_HOME": str(link)}, python=torch214_python)
    assert json.loads(second.stdout.splitlines()[-1])["origin"] == "jit-cache"
    assert "compiling" not in second.stderr

    other_home = os.environ.get("TORCHWHEEL_TEST_OTHER_CUDA_HOME")
    if not other_home:
        pytest.skip("no second CUDA toolkit: `nox -s tests` installs nvcc 13.2 from PyPI")
    same = json.loads(
        run_python(KEY_OF, {**env, "CUDA_HOME": str(link)}, python=torch214_python).stdout.splitlines()[-1]
    )
    other = json.loads(
        run_python(KEY_OF, {**env, "CUDA_HOME": other_home}, python=torch214_python).stdout.splitlines()[-1]
    )
    assert same["hit"] and "release 13.0" in same["nvcc"]
    assert not other["hit"] and "release 13.2" in other["nvcc"]
    assert other["key"] != same["key"]


def test_no_toolkit_is_one_clear_line(torch214_python: str, tmp_path: Path) -> None:
    env = build_env(tmp_path, MINFER_CUDA_ARCH_LIST="9.0a", CUDA_HOME=str(tmp_path / "nowhere"))
    result = subprocess.run([torch214_python, "-c", JIT_LOAD], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert (
        f"no CUDA toolkit found (CUDA_HOME={tmp_path / 'nowhere'}); "
        "set CUDA_HOME to a toolkit that has bin/nvcc" in result.stderr
    )
