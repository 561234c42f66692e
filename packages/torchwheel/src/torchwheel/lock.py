"""Kernel locks for JIT builds.

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


def ensure_private_dir(path: Path, what: str) -> Path:
    """Create `path` (mode 0700) if missing; refuse one that another user could write into."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    # A symlinked directory is fine when its target passes the same checks.
    info = os.stat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise SettingsError(f"{what} {path} is not a directory; point it at a directory")
    if info.st_uid != os.getuid():
        raise SettingsError(
            f"{what} {path} belongs to uid {info.st_uid}, not to you (uid {os.getuid()}); "
            "use a directory of your own"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise SettingsError(
            f"{what} {path} is writable by other users (mode {stat.S_IMODE(info.st_mode):o}); "
            f"run chmod 700 {path} or use another directory"
        )
    return path


@contextmanager
def exclusive_lock(path: Path, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on `path` for the `with` block; wait (and say so) if it is held."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise SettingsError(
                f"lock file {path} is a symlink; remove it (locks are never followed through links)"
            ) from error
        raise
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
