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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from torchwheel.errors import SettingsError


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
