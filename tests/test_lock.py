"""JIT locks are kernel locks in private dirs: a dead holder never blocks anyone."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from torchwheel.errors import SettingsError
from torchwheel.lock import ensure_private_dir, exclusive_lock

HOLDER = """
import sys, time
from pathlib import Path
from torchwheel.lock import exclusive_lock
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
    with exclusive_lock(lock, on_wait=waits.append):
        pass
    assert time.monotonic() - started < 5
    assert waits == []


def test_a_waiter_says_who_holds_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "spec.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    waits: list[str] = []
    try:
        killer = subprocess.Popen(
            [sys.executable, "-c", f"import time, os; time.sleep(1); os.kill({holder.pid}, 9)"]
        )
        with exclusive_lock(lock, on_wait=waits.append):
            pass
        killer.wait()
    finally:
        holder.kill()
        holder.wait()
    assert waits == [f"waiting for spec.lock, held by pid {holder.pid}"]


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
