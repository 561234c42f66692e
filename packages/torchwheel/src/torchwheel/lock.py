"""Kernel locks for JIT builds, and the private directories they (and the cache) live in.

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import SettingsError


def private_dir_problem(path: Path, what: str, variable: str | None = None) -> str | None:
    """Why `path` must not hold our cache or locks, as one line; None when it may (or is absent).

    The checks apply to the directory a symlink resolves to: a link is fine when its target is
    ours alone. Anything another user can write into could swap a `.so` we would then load.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as error:  # e.g. ENOTDIR: a parent is a file
        return f"{what} {path} cannot be used ({error.strerror}); {_elsewhere(variable)}"
    mine = stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
    if mine and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None  # the common case, on every load: one stat and no more
    resolved = os.path.realpath(path)
    shown = str(path) if resolved == str(path) else f"{path} (-> {resolved})"
    if not stat.S_ISDIR(info.st_mode):
        return f"{what} {shown} is not a directory; {_elsewhere(variable)}"
    if info.st_uid != os.getuid():
        return f"{what} {shown} belongs to uid {info.st_uid}, not to you (uid {os.getuid()}); {_elsewhere(variable)}"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (
            f"{what} {shown} is writable by other users (mode {stat.S_IMODE(info.st_mode):o}); "
            f"run chmod 700 {resolved} or {_elsewhere(variable)}"
        )
    return None


def _elsewhere(variable: str | None) -> str:
    if variable:
        return f"set {variable} to a directory of your own"
    return "use a directory of your own"


def ensure_private_dir(path: Path, what: str, variable: str | None = None) -> Path:
    """Create `path` (mode 0700) if missing; refuse one that another user could write into."""
    if problem := private_dir_problem(path, what, variable):
        raise SettingsError(problem)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise SettingsError(f"{what} {path} cannot be created ({error.strerror}); {_elsewhere(variable)}") from error
    # Checked again: it may have been made by someone else between the first check and mkdir.
    if problem := private_dir_problem(path, what, variable):
        raise SettingsError(problem)
    return path


def _open_lock(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise SettingsError(
                f"lock file {path} is a symlink; remove it (locks are never followed through links)"
            ) from error
        raise


@contextmanager
def exclusive_lock(path: Path, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on `path` for the `with` block; wait (and say so) if it is held."""
    fd = _open_lock(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
                on_wait(f"waiting for {path.name}, held by pid {holder}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


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
