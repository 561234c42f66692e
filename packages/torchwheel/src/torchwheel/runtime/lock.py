"""Kernel locks for JIT builds, the waits for them, and the private dir they live in.

`flock` locks belong to an open file: the kernel drops them when the holder exits or is killed,
so a crashed build can never leave a lock that hangs the next one (torch #189245, FlashInfer
#972). The lock files live in a private per-user directory on a local file system, and are
opened without following symlinks, so another user cannot point them elsewhere.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from torchwheel.errors import LoadError, SettingsError
from torchwheel.runtime.trust import ensure_private_dir


def _open_lock(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise SettingsError(
                f"lock file {path} is a symlink; remove it (locks are never followed through links)"
            ) from error
        raise


@dataclass(frozen=True)
class LockWait:
    """How a wait for a held lock goes: what to say, how often, and when to give up."""

    say: Callable[[str], None]
    stopped_timeout_s: float  # give up once the holder has been stopped (SIGSTOP) this long
    variable: str  # the setting that changes it, for the message
    poll_s: float = 0.1
    report_every_s: float = 30.0


@contextmanager
def exclusive_lock(path: Path, wait: LockWait | None = None) -> Iterator[None]:
    """Hold an exclusive lock on `path` for the `with` block.

    If it is held, say what holds it (pid, alive or not, stopped or not, for how long) and again
    every 30 s while waiting. A holder that runs is waited for: its own build has a step time
    limit (compile/ninja_run.py), so it ends. A stopped one (SIGSTOP, Ctrl-Z) may never resume,
    so after `stopped_timeout_s` of it the wait ends with a `LoadError`.
    """
    fd = _open_lock(path)
    try:
        if not _take(fd):
            _wait_for(fd, path, wait)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def _take(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _wait_for(fd: int, path: Path, wait: LockWait | None) -> None:
    if wait is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    started = last_report = time.monotonic()
    stopped_since: float | None = None
    wait.say(f"waiting for {path.name}, {holder_state(fd).describe()}")
    while not _take(fd):
        time.sleep(wait.poll_s)
        now = time.monotonic()
        holder = holder_state(fd)
        stopped_since = (stopped_since or now) if holder.stopped else None
        if stopped_since is not None and now - stopped_since > wait.stopped_timeout_s:
            raise LoadError(
                f"gave up waiting for {path} after {now - started:.0f} s: {holder.describe()}; resume it "
                f"(kill -CONT {holder.pid}) or end it, or raise {wait.variable}"
            )
        if now - last_report >= wait.report_every_s:
            wait.say(f"still waiting for {path.name} ({now - started:.0f} s), {holder.describe()}")
            last_report = now


@dataclass(frozen=True)
class HolderState:
    pid: int | None  # as the holder wrote it; None when unreadable
    alive: bool
    stopped: bool
    running_s: float | None  # since the holder process started

    def describe(self) -> str:
        if self.pid is None:
            return "held by a process that wrote no pid"
        if not self.alive:
            return f"held by pid {self.pid}, which is gone (a child of it may hold the lock)"
        state = "stopped (SIGSTOP): it will not finish until resumed" if self.stopped else "alive"
        age = f", running for {self.running_s:.0f} s" if self.running_s is not None else ""
        return f"held by pid {self.pid} ({state}{age})"


def holder_state(fd: int) -> HolderState:
    """What /proc says of the pid a lock file names (a process on this host: locks are local)."""
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    if not text.isdigit():
        return HolderState(None, False, False, None)
    pid = int(text)
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return HolderState(pid, False, False, None)
    # Fields after the name: state is the first, starttime (clock ticks since boot) the 20th.
    running = uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return HolderState(pid, fields[0] != "Z", fields[0] in ("T", "t"), running)


@contextmanager
def try_lock(path: Path) -> Iterator[bool]:
    """Take the lock on `path` if it is free, without waiting; yield whether it was taken."""
    fd = _open_lock(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def usable_lock_dir(candidates: tuple[Path, ...], variable: str | None, say: Callable[[str], None]) -> Path:
    """The first of `candidates` that is (or is now made) a private dir of this user.

    A lock dir another user made first, or a symlink planted where it should be, would refuse
    every build or send our lock files elsewhere; so the default dir is made with `mkdir` 0700,
    never followed through a link, and checked after: if it is not ours the next candidate
    serves, with one line that says so. A dir the user named (`variable` set) is used or refused.
    """
    problems: list[str] = []
    for directory in candidates:
        problem = _make_private(directory) if variable is None else _named_problem(directory, variable)
        if problem is None:
            if problems:
                say(f"{problems[0]}: using {directory} for locks instead")
            return directory
        problems.append(problem)
    if variable is not None:
        raise SettingsError(problems[0])
    raise SettingsError(f"no private lock dir: {'; '.join(problems)}; set TORCHWHEEL_LOCK_DIR to a dir of your own")


def _named_problem(directory: Path, variable: str) -> str | None:
    try:
        ensure_private_dir(directory, "lock dir", variable)
    except SettingsError as error:
        return str(error)
    return None


def _make_private(directory: Path) -> str | None:
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    except OSError as error:
        return f"lock dir {directory} cannot be made ({error.strerror})"
    try:
        info = os.lstat(directory)
    except OSError as error:
        return f"lock dir {directory} cannot be examined ({error.strerror})"
    if stat.S_ISLNK(info.st_mode):
        return f"lock dir {directory} is a symlink (to {os.path.realpath(directory)}), not a dir of yours"
    if not stat.S_ISDIR(info.st_mode):
        return f"lock dir {directory} is not a directory"
    if info.st_uid != os.getuid():
        return f"lock dir {directory} belongs to uid {info.st_uid}, not to you (uid {os.getuid()})"
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return f"lock dir {directory} is open to other users (mode {stat.S_IMODE(info.st_mode):o})"
    return None
