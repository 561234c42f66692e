"""Concurrent and crashing builders, on real JIT builds of the tiny project's CPU specs: a cold
spec raced by 16 processes compiles once; a builder killed mid-compile takes its compilers with
it and leaves nothing that blocks or loads; a damaged cache entry is rebuilt, never loaded;
several builders (or two hosts sharing a cache dir) never corrupt each other's state."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import isolated_env, write_tiny_project

pytestmark = pytest.mark.slow

# Each racer imports torch and the project, says "ready", and loads only when told to go, so
# that every process really asks at the same moment.
RACER = """
import json, sys, torch
from torchwheel import Loader
from tiny_project import PROJECT
loader = Loader(PROJECT)
print("ready", flush=True)
sys.stdin.readline()
out = {}
for name in sys.argv[1:]:
    loaded = loader.load(name)
    x = torch.ones(2)
    getattr(torch.ops.tiny, name)(x)
    out[name] = {"origin": loaded.origin, "reason": loaded.reason, "path": str(loaded.path), "value": x[0].item()}
print(json.dumps(out), flush=True)
"""


@dataclass(frozen=True)
class Run:
    result: dict[str, dict]
    log: str


def race(env: dict[str, str], *spec_lists: list[str]) -> list[Run]:
    """Start one process per spec list, release them together, and return what each loaded."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, *specs],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for specs in spec_lists
    ]
    try:
        release_together(processes)
        runs = []
        for process in processes:
            out, err = process.communicate(timeout=900)
            assert process.returncode == 0, err
            runs.append(Run(json.loads(out.strip().splitlines()[-1]), err))
        return runs
    finally:
        for process in processes:
            process.kill()


def cache_listing(env: dict[str, str], spec: str) -> list[str]:
    spec_dir = Path(env["TORCHWHEEL_CACHE_DIR"]) / spec
    return sorted(p.name for p in spec_dir.iterdir()) if spec_dir.is_dir() else []


def compiles(runs: list[Run], spec: str) -> int:
    return sum(line.count(f"JIT-built {spec} in ") for run in runs for line in run.log.splitlines())


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return isolated_env(tmp_path, write_tiny_project(tmp_path / "project"))


def release_together(processes: list[subprocess.Popen]) -> None:
    """Wait until every process has imported torch and said "ready", then let all go at once."""
    for process in processes:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()


def test_sixteen_processes_racing_a_cold_spec_compile_it_once_and_all_succeed(env) -> None:
    runs = race(env, *[["scale_a"]] * 16)
    origins = sorted(run.result["scale_a"]["origin"] for run in runs)
    assert origins == ["jit-build"] + ["jit-cache"] * 15
    assert compiles(runs, "scale_a") == 1
    assert all(run.result["scale_a"]["value"] == 2.0 for run in runs)
    assert len({run.result["scale_a"]["path"] for run in runs}) == 1
    assert [name for name in cache_listing(env, "scale_a") if name.startswith(".")] == []


def test_several_processes_building_several_specs_do_not_corrupt_each_other(env) -> None:
    runs = race(env, ["scale_a", "scale_b"], ["scale_b", "scale_a"], ["scale_a", "scale_b"], ["scale_b", "scale_a"])
    for spec in ("scale_a", "scale_b"):
        assert compiles(runs, spec) == 1
        assert all(run.result[spec]["value"] == 2.0 for run in runs)
        assert len(cache_listing(env, spec)) == 1  # one entry, no temporary dir left


def test_two_hosts_sharing_a_cache_dir_both_build_and_keep_one_sound_entry(env, tmp_path: Path) -> None:
    # Locks are per host (local disk), so two hosts do not see each other's: both compile.
    other_host = {**env, "TORCHWHEEL_LOCK_DIR": str(tmp_path / "other-host-locks")}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, "scale_a"],
            env=e,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for e in (env, other_host)
    ]
    release_together(processes)
    outputs = [process.communicate(timeout=900) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    results = [json.loads(out.strip().splitlines()[-1])["scale_a"] for out, _ in outputs]
    assert [r["origin"] for r in results] == ["jit-build", "jit-build"]
    assert all(r["value"] == 2.0 for r in results)
    assert len(cache_listing(env, "scale_a")) == 1
    # The entry left in place is whole: a third process loads it without compiling.
    (third,) = race(env, ["scale_a"])
    assert third.result["scale_a"]["origin"] == "jit-cache" and "compiling" not in third.log


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], Path]:
    """A cache holding a JIT build of scale_a, to copy: (project, its env, the cache dir)."""
    root = tmp_path_factory.mktemp("built")
    env = isolated_env(root, write_tiny_project(root / "project"))
    (run,) = race(env, ["scale_a"])
    assert run.result["scale_a"]["origin"] == "jit-build"
    return Path(env["PYTHONPATH"]), env, Path(env["TORCHWHEEL_CACHE_DIR"])


def copied_cache(built, tmp_path: Path) -> tuple[dict[str, str], Path]:
    _, env, cache = built
    copy = Path(shutil.copytree(cache, tmp_path / "cache", symlinks=True))
    (key,) = cache_listing({"TORCHWHEEL_CACHE_DIR": str(copy)}, "scale_a")
    env = {**env, "TORCHWHEEL_CACHE_DIR": str(copy), "TORCHWHEEL_LOCK_DIR": str(tmp_path / "locks")}
    return env, copy / "scale_a" / key / "scale_a.so"


def test_a_truncated_cached_library_is_rebuilt_not_loaded(built, tmp_path: Path) -> None:
    env, library = copied_cache(built, tmp_path)
    os.truncate(library, library.stat().st_size // 2)
    (run,) = race(env, ["scale_a"])
    loaded = run.result["scale_a"]
    assert loaded["origin"] == "jit-build" and loaded["value"] == 2.0
    assert f"cached {library}: fails its sha256 check (" in loaded["reason"]
    assert loaded["reason"].endswith(", so it is rebuilt")
    assert cache_listing(env, "scale_a") == [library.parent.name]


def test_a_corrupted_cached_library_of_the_same_size_and_mtime_is_rebuilt(built, tmp_path: Path) -> None:
    env, library = copied_cache(built, tmp_path)
    (race(env, ["scale_a"])[0].result["scale_a"]["origin"] == "jit-cache") or pytest.fail("copy not loadable")
    before = library.stat()
    data = bytearray(library.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    library.write_bytes(bytes(data))
    os.utime(library, ns=(before.st_atime_ns, before.st_mtime_ns))  # only the ctime tells
    (run,) = race(env, ["scale_a"])
    assert run.result["scale_a"]["origin"] == "jit-build" and run.result["scale_a"]["value"] == 2.0
    assert "fails its sha256 check" in run.result["scale_a"]["reason"]


def descendants(root: int) -> dict[int, str]:
    """pid -> command name of every process below `root`, from /proc."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        names[int(entry)] = stat[stat.index("(") + 1 : stat.rindex(")")]
        children.setdefault(int(stat[stat.rindex(")") + 2 :].split()[1]), []).append(int(entry))
    found, pending = {}, [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found[child] = names[child]
            pending.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"  # a zombie has stopped running


@dataclass(frozen=True)
class Killed:
    processes: dict[int, str]  # the builder's descendants when it was killed
    survivors: list[str]  # those still running 20 s later
    entries_after_kill: list[str]  # the spec's cache dir right after the kill
    next_run: Run
    entries_after_next: list[str]


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> Killed:
    """A builder SIGKILLed while cc1plus runs, then the next process asking for the same spec."""
    root = tmp_path_factory.mktemp("killed")
    env = isolated_env(root, write_tiny_project(root / "project"))
    builder = subprocess.Popen(
        [sys.executable, "-c", RACER, "scale_a"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert builder.stdout is not None and builder.stdout.readline().strip() == "ready"
    assert builder.stdin is not None
    builder.stdin.write("go\n")
    builder.stdin.flush()
    deadline = time.monotonic() + 300
    while "cc1plus" not in descendants(builder.pid).values():
        assert builder.poll() is None and time.monotonic() < deadline, "the build ended before it was killed"
        time.sleep(0.05)
    time.sleep(0.5)
    processes = descendants(builder.pid)
    builder.send_signal(signal.SIGKILL)
    builder.wait()
    entries_after_kill = cache_listing(env, "scale_a")
    deadline = time.monotonic() + 20
    while any(alive(pid) for pid in processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [f"{pid} {name}" for pid, name in processes.items() if alive(pid)]
    (next_run,) = race(env, ["scale_a"])
    return Killed(processes, survivors, entries_after_kill, next_run, cache_listing(env, "scale_a"))


def test_a_killed_builders_ninja_and_compilers_die_with_it(killed: Killed) -> None:
    assert {"ninja", "cc1plus"} <= set(killed.processes.values())
    assert killed.survivors == []


def test_a_killed_builder_leaves_no_file_a_reader_can_load(killed: Killed) -> None:
    # Only its temporary build dir is left, which no reader looks into.
    assert [name for name in killed.entries_after_kill if not name.startswith(".build-")] == []


def test_a_killed_builders_lock_does_not_block_the_next_build(killed: Killed) -> None:
    loaded = killed.next_run.result["scale_a"]
    assert loaded["origin"] == "jit-build" and loaded["value"] == 2.0
    assert "waiting for" not in killed.next_run.log


def test_the_next_build_removes_the_killed_builders_temporary_dir(killed: Killed) -> None:
    assert [name for name in killed.entries_after_next if name.startswith(".")] == []
    assert len(killed.entries_after_next) == 1
