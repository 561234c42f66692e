"""JIT locks are kernel locks in private dirs: a dead holder never blocks anyone."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from torchwheel.errors import SettingsError
from torchwheel.runtime.lock import LockWait, exclusive_lock, try_lock
from torchwheel.runtime.trust import ensure_private_dir, private_dir_problem

HOLDER = """
import sys, time
from pathlib import Path
from torchwheel.runtime.lock import exclusive_lock
with exclusive_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_lock_held_by_a_killed_process_is_free_at_once(tmp_path: Path) -> None:
    lock = tmp_path / "spec.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    waits: list[str] = []
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    started = time.monotonic()
    with exclusive_lock(lock, LockWait(waits.append, 300.0, "TORCHWHEEL_LOCK_TIMEOUT")):
        pass
    assert time.monotonic() - started < 5
    assert waits == []


def test_a_waiter_says_who_holds_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "spec.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    waits: list[str] = []
    try:
        killer = subprocess.Popen([sys.executable, "-c", f"import time, os; time.sleep(1); os.kill({holder.pid}, 9)"])
        with exclusive_lock(lock, LockWait(waits.append, 300.0, "TORCHWHEEL_LOCK_TIMEOUT")):
            pass
        killer.wait()
    finally:
        holder.kill()
        holder.wait()
    assert len(waits) == 1
    assert waits[0].startswith(f"waiting for spec.lock, held by pid {holder.pid} (alive, running for ")


def test_a_lock_file_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    (tmp_path / "spec.lock").symlink_to(target)
    with (
        pytest.raises(SettingsError, match=r"lock file .*spec.lock is a symlink; remove it"),
        exclusive_lock(tmp_path / "spec.lock"),
    ):
        pass


def test_a_private_dir_is_created_with_mode_0700(tmp_path: Path) -> None:
    path = ensure_private_dir(tmp_path / "a" / "locks", "lock dir")
    assert (os.stat(path).st_mode & 0o777) == 0o700


def test_a_dir_writable_by_others_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(
        SettingsError, match=r"cache dir .*shared is writable by other users \(mode 777\); run chmod 700"
    ):
        ensure_private_dir(shared, "cache dir")


def test_a_symlinked_dir_is_fine_when_its_target_is_private(tmp_path: Path) -> None:
    real = ensure_private_dir(tmp_path / "real", "cache dir")
    (tmp_path / "link").symlink_to(real)
    assert ensure_private_dir(tmp_path / "link", "cache dir") == tmp_path / "link"


needs_root = pytest.mark.skipif(os.getuid() != 0, reason="giving a directory to another user needs root")


@needs_root
def test_a_dir_of_another_user_is_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, 65534, 65534)
    with pytest.raises(SettingsError, match=r"cache dir .*foreign belongs to uid 65534, not to you \(uid 0\); set X"):
        ensure_private_dir(foreign, "cache dir", "X")


@needs_root
def test_a_symlink_to_a_dir_of_another_user_is_refused_by_its_target(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, 65534, 65534)
    (tmp_path / "link").symlink_to(foreign)
    with pytest.raises(SettingsError, match=rf"lock dir .*link \(-> {foreign}\) belongs to uid 65534"):
        ensure_private_dir(tmp_path / "link", "lock dir")


def test_a_symlink_to_a_dir_writable_by_others_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (tmp_path / "link").symlink_to(shared)
    with pytest.raises(SettingsError, match=r"is writable by other users \(mode 1777\)"):
        ensure_private_dir(tmp_path / "link", "cache dir")


def test_a_file_in_place_of_the_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "locks").write_text("")
    with pytest.raises(SettingsError, match=r"lock dir .*locks is not a directory; set MINFER_LOCK_DIR to a directory"):
        ensure_private_dir(tmp_path / "locks", "lock dir", "MINFER_LOCK_DIR")


def test_a_missing_dir_is_not_a_problem_until_it_is_made(tmp_path: Path) -> None:
    assert private_dir_problem(tmp_path / "not yet", "cache dir") is None
    assert not (tmp_path / "not yet").exists()


def test_try_lock_says_whether_the_lock_was_free(tmp_path: Path) -> None:
    lock = tmp_path / "spec.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with try_lock(lock) as taken:
            assert not taken
    finally:
        holder.kill()
        holder.wait()
    with try_lock(lock) as taken:
        assert taken
