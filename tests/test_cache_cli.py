"""`torchwheel cache list|prune|clear` on a real JIT cache (the tiny project's two specs): it
shows entries, evicts by age and by size, least recently used first, and never touches an
entry whose build lock is held."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import isolated_env, run_python, write_tiny_project

DAY = 86400

HOLDER = """
import sys, time
from pathlib import Path
from torchwheel.runtime.lock import exclusive_lock
with exclusive_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(600)
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A JIT cache holding scale_a and scale_b; (the project, the cache dir)."""
    root = tmp_path_factory.mktemp("cache-cli")
    project = write_tiny_project(root / "project")
    code = "from torchwheel import Loader; from tiny_project import PROJECT\n"
    code += "loader = Loader(PROJECT); loader.load('scale_a'); loader.load('scale_b')"
    run_python(code, isolated_env(root, project))
    return project, root / "cache"


@pytest.fixture
def cache(template, tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A copy of the template cache, both entries last used an hour ago; (env, cache dir)."""
    project, original = template
    copy = Path(shutil.copytree(original, tmp_path / "cache", symlinks=True))
    for entry in entries(copy):
        age(entry, 3600)
    return isolated_env(tmp_path, project), copy


def entries(cache_dir: Path) -> list[Path]:
    return sorted(p for spec in cache_dir.iterdir() if not spec.name.startswith(".") for p in spec.iterdir())


def entry_of(cache_dir: Path, spec: str) -> Path:
    (entry,) = [p for p in (cache_dir / spec).iterdir() if not p.name.startswith(".")]
    return entry


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def cache_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torchwheel", "cache", *args, "tiny_project:PROJECT"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_list_shows_each_entry_with_its_key_size_and_last_use(cache) -> None:
    env, cache_dir = cache
    out = cache_cli(env, "list").stdout.splitlines()
    assert out[0].startswith(f"{cache_dir} (tiny): 2 entries, ")
    for spec in ("scale_a", "scale_b"):
        (line,) = [line for line in out if line.split()[0] == spec]
        assert entry_of(cache_dir, spec).name[:12] in line and line.endswith("used 1h ago")


def test_prune_older_than_removes_only_entries_unused_that_long(cache) -> None:
    env, cache_dir = cache
    age(entry_of(cache_dir, "scale_a"), 40 * DAY)
    out = cache_cli(env, "prune", "--older-than", "30d").stdout
    assert "removed 1 entries" in out
    assert [p.parent.name for p in entries(cache_dir)] == ["scale_b"]


def test_prune_max_size_evicts_the_least_recently_used_first(cache) -> None:
    env, cache_dir = cache
    age(entry_of(cache_dir, "scale_b"), 2 * DAY)
    size = sum(f.stat().st_size for f in entry_of(cache_dir, "scale_a").iterdir())
    cache_cli(env, "prune", "--max-size", str(size + 1024))
    assert [p.parent.name for p in entries(cache_dir)] == ["scale_a"]


def test_prune_never_touches_an_entry_whose_lock_is_held(cache) -> None:
    env, cache_dir = cache
    locked = entry_of(cache_dir, "scale_a")
    lock = Path(env["TORCHWHEEL_LOCK_DIR"]) / f"scale_a-{locked.name}.lock"
    lock.parent.mkdir(mode=0o700)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        out = cache_cli(env, "prune", "--older-than", "1m").stdout
    finally:
        holder.kill()
        holder.wait()
    assert f"kept scale_a {locked.name[:12]}: its build lock is held (in use)" in out
    assert entries(cache_dir) == [locked]


def test_clear_removes_every_entry_and_every_verification_marker(cache) -> None:
    env, cache_dir = cache
    assert list((cache_dir / ".verified").iterdir())  # the JIT builds vouched for their files
    cache_cli(env, "clear")
    assert entries(cache_dir) == [] and list((cache_dir / ".verified").iterdir()) == []


def test_prune_removes_a_dead_builds_temporary_dir_but_not_a_running_one(cache) -> None:
    env, cache_dir = cache
    key = entry_of(cache_dir, "scale_a").name
    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (cache_dir / "scale_a" / f".build-{key}-{host}-{dead.pid}-abc").mkdir()
    (cache_dir / "scale_a" / f".build-{key}-{host}-{os.getpid()}-def").mkdir()
    out = cache_cli(env, "prune", "--older-than", "30d").stdout
    assert "1 partial builds" in out
    left = sorted(p.name for p in (cache_dir / "scale_a").iterdir() if p.name.startswith("."))
    assert left == [f".build-{key}-{host}-{os.getpid()}-def"]


def test_dry_run_removes_nothing(cache) -> None:
    env, cache_dir = cache
    before = entries(cache_dir)
    out = cache_cli(env, "prune", "--older-than", "1m", "--dry-run").stdout
    assert "would remove 2 entries" in out and entries(cache_dir) == before


def test_loading_from_the_cache_marks_the_entry_used(cache) -> None:
    env, cache_dir = cache
    entry = entry_of(cache_dir, "scale_a")
    age(entry, 40 * DAY)
    run_python("from torchwheel import Loader; from tiny_project import PROJECT; Loader(PROJECT).load('scale_a')", env)
    assert time.time() - entry.stat().st_mtime < 600
    cache_cli(env, "prune", "--older-than", "30d")
    assert entry in entries(cache_dir)


def test_a_cache_not_created_yet_is_listed_as_empty(tmp_path: Path, template) -> None:
    project, _ = template
    out = cache_cli(isolated_env(tmp_path, project), "list").stdout
    assert out.strip() == f"{tmp_path / 'cache'} (tiny): empty (not created yet)"
    assert not (tmp_path / "cache").exists()
